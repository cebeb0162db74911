/**
 * The SQL of the SQLite store's jobs table, and the writes that persist the
 * lifecycle's decisions (lifecycle.ts) in it.
 *
 * @module
 */
import { toBinary } from "@bufbuild/protobuf";
import { JobResultSchema, JobState } from "../../../gen/job/v1/job_pb.ts";
import type { Finish, Reschedule } from "../lifecycle.ts";
import { VIEW_COLUMNS, type ViewRow } from "./job_rows.ts";
import type { SqlRunner } from "./sql_runner.ts";

/** ready_key of work scheduled again: below every row id, oldest first. */
export const RESCHEDULED_BASE = -(2 ** 52);

/**
 * The statements that persist the lifecycle's decisions, built once (the
 * statement cache is keyed by text). States the decision names are bound;
 * states a query selects by are written in as literals, so SQLite can use
 * the partial index of that state. Queries only find candidates: whether a
 * job may be leased, or its lease has ended, is the lifecycle's to decide.
 */
export const SQL = {
  insertJob:
    `INSERT INTO jobs (id, job_id, queue, state, attempt, request_id, created_at_ms, updated_at_ms, params, execution_config, ready_key)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  byRequestId: "SELECT * FROM jobs WHERE request_id = ?",
  byJobId: "SELECT * FROM jobs WHERE job_id = ?",
  viewByJobId: `SELECT ${VIEW_COLUMNS} FROM jobs WHERE job_id = ?`,
  readyCandidates:
    `SELECT ${VIEW_COLUMNS} FROM jobs WHERE queue = ? AND state = ${JobState.SCHEDULED}
    ORDER BY ready_key LIMIT ?`,
  /** Leases every job of a JSON array of [row id, state, attempt, lease end] in one statement. */
  lease: `UPDATE jobs SET state = lease.value ->> 1, attempt = lease.value ->> 2, ready_key = NULL,
    lease_expires_at_ms = lease.value ->> 3, sequence_base = highest_sequence, updated_at_ms = ?
    FROM json_each(?) AS lease WHERE jobs.id = lease.value ->> 0 RETURNING *`,
  extend: "UPDATE jobs SET lease_expires_at_ms = ? WHERE id = ?",
  finish: `UPDATE jobs SET state = ?, result = ?, ready_key = NULL, lease_expires_at_ms = NULL,
    updated_at_ms = ?, finished_at_ms = ? WHERE id = ?`,
  reschedule: `UPDATE jobs SET state = ?, ready_key = ?, lease_expires_at_ms = NULL,
    updated_at_ms = ? WHERE id = ?`,
  cancelReason: "UPDATE jobs SET cancel_reason = ?, updated_at_ms = ? WHERE id = ?",
  leasesEndedBy: `SELECT ${VIEW_COLUMNS} FROM jobs WHERE state = ${JobState.RUNNING}
    AND lease_expires_at_ms <= ? ORDER BY lease_expires_at_ms`,
  earliestLeaseExpiry:
    `SELECT MIN(lease_expires_at_ms) AS next FROM jobs WHERE state = ${JobState.RUNNING}`,
} as const;

/** Writes a finish the lifecycle decided: the job's final state and result; its lease and place in the queue end. */
export function writeFinish(run: SqlRunner, row: ViewRow, finish: Finish, now: number): void {
  run.sql(SQL.finish).run(finish.state, toBinary(JobResultSchema, finish.result), now, now, row.id);
}

/** Writes a reschedule the lifecycle decided: the job waits again, ahead of newer work. */
export function writeReschedule(
  run: SqlRunner,
  row: ViewRow,
  reschedule: Reschedule,
  now: number,
): void {
  run.sql(SQL.reschedule).run(
    reschedule.state,
    RESCHEDULED_BASE + reschedule.readyAtMs,
    now,
    row.id,
  );
}
