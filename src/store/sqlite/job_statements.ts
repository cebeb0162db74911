/**
 * The SQL of the SQLite store's jobs table, and the writes that persist the
 * lifecycle's decisions (lifecycle.ts) in it.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  JobEventSchema,
  JobParamsSchema,
  JobResultSchema,
  JobSchema,
  JobState,
  RetryPolicySchema,
} from "../../../gen/job/v1/job_pb.ts";
import { MAX_FILTERABLE_METADATA_LENGTH } from "../../protocol/limits.ts";
import type { EnqueueInput } from "../job_store.ts";
import type { AttemptEnd, CreateDecision, Finish, Redrive, Reschedule } from "../lifecycle.ts";
import { fromBinary } from "@bufbuild/protobuf";
import {
  appendAttempt,
  closedAttempt,
  mayHoldFullAttempts,
  noticeEvent,
} from "../attempt_records.ts";
import { openAttemptOfRow, VIEW_COLUMNS, type ViewRow } from "./job_rows.ts";
import type { SqlRunner } from "./sql_runner.ts";

/** ready_key of work scheduled again: below every row id, oldest first. */
export const RESCHEDULED_BASE = -(2 ** 52);
const RESCHEDULED_BASE_SQL = `(${RESCHEDULED_BASE})`;

/**
 * The statements that persist the lifecycle's decisions, built once (the
 * statement cache is keyed by text). States the decision names are bound;
 * states a query selects by are written in as literals, so SQLite can use
 * the partial index of that state. Queries only find candidates: whether a
 * job may be leased, or its lease has ended, is the lifecycle's to decide.
 */
export const SQL = {
  insertJob:
    `INSERT INTO jobs (id, job_id, queue, state, attempt, request_id, created_at_ms, updated_at_ms, params, execution_config, ready_key, retry_policy, priority, not_before_ms, owner, waiting_for)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  insertMetadata: "INSERT INTO job_metadata (key, value, job) VALUES (?, ?, ?)",
  byRequestId: "SELECT * FROM jobs WHERE request_id = ?",
  byJobId: "SELECT * FROM jobs WHERE job_id = ?",
  viewByJobId: `SELECT ${VIEW_COLUMNS} FROM jobs WHERE job_id = ?`,
  /**
   * Due jobs in queue order, highest priority first; jobs waiting out a
   * delayed start or a backoff have no ready_key yet.
   */
  readyCandidates:
    `SELECT ${VIEW_COLUMNS} FROM jobs WHERE queue = ? AND state = ${JobState.SCHEDULED}
    AND ready_key IS NOT NULL ORDER BY priority DESC, ready_key LIMIT ?`,
  /**
   * Leases every job of a JSON array of [row id, state, attempt, lease end]
   * in one statement, opening each one's attempt for the named worker.
   */
  lease: `UPDATE jobs SET state = lease.value ->> 1, attempt = lease.value ->> 2, ready_key = NULL,
    lease_expires_at_ms = lease.value ->> 3, sequence_base = highest_sequence,
    attempt_base = highest_sequence, not_before_ms = NULL, updated_at_ms = ?,
    attempt_worker = ?, attempt_started_ms = ?
    FROM json_each(?) AS lease WHERE jobs.id = lease.value ->> 0 RETURNING *`,
  extend: "UPDATE jobs SET lease_expires_at_ms = ? WHERE id = ?",
  finish:
    `UPDATE jobs SET state = ?, result = ?, failure_reason = ?, ready_key = NULL, waiting_for = NULL,
    lease_expires_at_ms = NULL, not_before_ms = NULL, attempts = CAST(COALESCE(attempts, X'') || ? AS BLOB),
    updated_at_ms = ?, finished_at_ms = ? WHERE id = ?`,
  reschedule: `UPDATE jobs SET state = ?, ready_key = ?, lease_expires_at_ms = NULL,
    not_before_ms = ?, used_attempts = ?, lost_attempts = ?,
    attempts = CAST(COALESCE(attempts, X'') || ? AS BLOB), updated_at_ms = ? WHERE id = ?`,
  redrive: `UPDATE jobs SET state = ?, ready_key = ?, result = NULL, failure_reason = '',
    not_before_ms = NULL, used_attempts = ?, lost_attempts = ?, finished_at_ms = NULL,
    updated_at_ms = ? WHERE id = ?`,
  insertNotice: "INSERT INTO events (job, end_seq, timestamp_ms, payload) VALUES (?, ?, ?, ?)",
  highestSequence: "UPDATE jobs SET highest_sequence = ? WHERE id = ?",
  attemptsOf: "SELECT attempts FROM jobs WHERE id = ?",
  setAttempts: "UPDATE jobs SET attempts = ? WHERE id = ?",
  /**
   * Puts every job whose backoff ended by a time into its queue's order;
   * returns their queues. A job waiting on dependencies stays out, however
   * due its delayed start (sqlite_dependencies.ts puts it in later).
   */
  promoteDue: `UPDATE jobs SET ready_key = ${RESCHEDULED_BASE_SQL} + not_before_ms
    WHERE state = ${JobState.SCHEDULED} AND ready_key IS NULL AND waiting_for IS NULL
    AND not_before_ms <= ? RETURNING queue`,
  earliestDue: `SELECT MIN(not_before_ms) AS next FROM jobs
    WHERE state = ${JobState.SCHEDULED} AND ready_key IS NULL AND waiting_for IS NULL`,
  cancelReason: "UPDATE jobs SET cancel_reason = ?, updated_at_ms = ? WHERE id = ?",
  leasesEndedBy: `SELECT ${VIEW_COLUMNS} FROM jobs WHERE state = ${JobState.RUNNING}
    AND lease_expires_at_ms <= ? ORDER BY lease_expires_at_ms`,
  earliestLeaseExpiry:
    `SELECT MIN(lease_expires_at_ms) AS next FROM jobs WHERE state = ${JobState.RUNNING}`,
} as const;

/** What {@link writeNewJob} writes besides the caller's input. */
export interface NewJobRow {
  /** The row id, chosen by the store (one above the highest). */
  readonly id: number;
  readonly jobId: string;
  /** The encoded execution config. */
  readonly executionConfig: Uint8Array;
  /** The dependencies it waits on (none: it joins its queue, or its delayed start). */
  readonly waitingFor: readonly string[];
}

/**
 * Writes a new job the lifecycle decided: its row whole in one statement
 * (its ready_key, the queue order, is its id; a delayed start is out of the
 * queue's order until due, see promoteDue, and so is a job waiting on
 * dependencies, whose job_dependencies rows are the caller's), and the metadata pairs a
 * listing can filter on (values of at most MAX_FILTERABLE_METADATA_LENGTH
 * characters: validation refuses a filter on a longer one). Runs inside the
 * caller's transaction, so the job and its pairs commit together.
 */
export function writeNewJob(
  run: SqlRunner,
  row: NewJobRow,
  input: EnqueueInput,
  decision: CreateDecision,
  now: number,
): void {
  const delayed = decision.notBeforeMs > 0;
  const waiting = row.waitingFor.length > 0;
  run.sql(SQL.insertJob).run(
    row.id,
    row.jobId,
    input.queue,
    decision.state,
    decision.attempt,
    input.requestId === "" ? null : input.requestId,
    now,
    now,
    toBinary(JobParamsSchema, input.params),
    row.executionConfig,
    delayed || waiting ? null : row.id,
    input.params.retry === undefined ? null : toBinary(RetryPolicySchema, input.params.retry),
    input.params.priority,
    delayed ? decision.notBeforeMs : null,
    input.params.owner,
    waiting ? JSON.stringify(row.waitingFor) : null,
  );
  for (const [key, value] of Object.entries(input.params.metadata)) {
    if (value.length > MAX_FILTERABLE_METADATA_LENGTH) continue;
    run.sql(SQL.insertMetadata).run(key, value, row.id);
  }
}

/**
 * Writes a finish the lifecycle decided: the job's final state and result;
 * its lease and place in the queue end. Each write of a decision is one
 * transaction (joining the caller's, if any), so a crash or a full disk
 * leaves all of it or none.
 */
export function writeFinish(run: SqlRunner, row: ViewRow, finish: Finish, now: number): void {
  run.transaction(() => writeFinishIn(run, row, finish, now));
}

function writeFinishIn(run: SqlRunner, row: ViewRow, finish: Finish, now: number): void {
  run.sql(SQL.finish).run(
    finish.state,
    toBinary(JobResultSchema, finish.result),
    finish.failureReason,
    endedAttemptBytes(run, row, finish.attemptEnd),
    now,
    now,
    row.id,
  );
}

/**
 * Writes a reschedule the lifecycle decided: the ended attempt, then the
 * ATTEMPT_END notice after its events, and the job waiting again: due at
 * once ahead of newer work, or out of the queue's order until its backoff
 * ends. Returns whether it is due now.
 */
export function writeReschedule(
  run: SqlRunner,
  row: ViewRow,
  reschedule: Reschedule,
  now: number,
): boolean {
  // The reschedule, its notice and the job's new highest sequence: one
  // commit, or the notice could sit at a number the job does not know of.
  return run.transaction(() => writeRescheduleIn(run, row, reschedule, now));
}

function writeRescheduleIn(
  run: SqlRunner,
  row: ViewRow,
  reschedule: Reschedule,
  now: number,
): boolean {
  const due = reschedule.notBeforeMs <= now;
  run.sql(SQL.reschedule).run(
    reschedule.state,
    due ? RESCHEDULED_BASE + reschedule.readyAtMs : null,
    reschedule.notBeforeMs > 0 ? reschedule.notBeforeMs : null,
    reschedule.usedAttempts,
    reschedule.lostAttempts,
    endedAttemptBytes(run, row, reschedule.attemptEnd),
    now,
    row.id,
  );
  if (reschedule.notice !== undefined) {
    const sequence = BigInt(row.highest_sequence) + 1n;
    const event = noticeEvent(reschedule.notice, sequence, now);
    run.sql(SQL.insertNotice).run(row.id, Number(sequence), now, toBinary(JobEventSchema, event));
    run.sql(SQL.highestSequence).run(Number(sequence), row.id);
  }
  return due;
}

/** Writes a redrive the lifecycle decided: the job due again now, with a fresh budget. */
export function writeRedrive(run: SqlRunner, row: ViewRow, redrive: Redrive, now: number): void {
  run.sql(SQL.redrive).run(
    redrive.state,
    RESCHEDULED_BASE + redrive.readyAtMs,
    redrive.usedAttempts,
    redrive.lostAttempts,
    now,
    row.id,
  );
}

/**
 * The encoded attempts entry an attempt's end appends (empty when no
 * attempt ended). Past the list's bound, the stored list is first cut so
 * that it stays bounded with the entry appended (attempt_records.ts).
 */
function endedAttemptBytes(run: SqlRunner, row: ViewRow, end: AttemptEnd | undefined): Uint8Array {
  if (end === undefined) return new Uint8Array();
  const attempt = closedAttempt(
    openAttemptOfRow(row),
    end,
    BigInt(row.highest_sequence),
    BigInt(row.attempt_base),
  );
  if (mayHoldFullAttempts(end.attempt)) {
    const stored = run.sql(SQL.attemptsOf).get(row.id) as { attempts: Uint8Array | null };
    const list = stored.attempts === null ? [] : fromBinary(JobSchema, stored.attempts).attempts;
    const kept = appendAttempt(list, attempt);
    kept.pop();
    run.sql(SQL.setAttempts).run(
      toBinary(JobSchema, create(JobSchema, { attempts: kept })),
      row.id,
    );
  }
  return toBinary(JobSchema, create(JobSchema, { attempts: [attempt] }));
}
