/**
 * Rows of the SQLite `jobs` table and what they map to: the Job message a
 * caller gets, and the view the lifecycle decides on.
 *
 * @module
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ExecutionConfigSchema,
  type Job,
  type JobAttempt,
  type JobParams,
  JobParamsSchema,
  JobResultSchema,
  JobSchema,
  JobState,
  RetryPolicySchema,
} from "../../../gen/job/v1/job_pb.ts";
import { type OpenAttempt, runningAttempt } from "../attempt_records.ts";
import type { ListJobsQuery } from "../job_store.ts";
import type { JobView } from "../lifecycle.ts";

/** One row of `jobs`, as `SELECT *` reads it (see schema.ts). */
export interface JobRow {
  id: number;
  job_id: string;
  queue: string;
  state: number;
  request_id: string | null;
  attempt: number;
  lease_expires_at_ms: number | null;
  sequence_base: number;
  highest_sequence: number;
  output_bytes: number;
  output_truncated: number;
  created_at_ms: number;
  updated_at_ms: number;
  params: Uint8Array;
  execution_config: Uint8Array;
  result: Uint8Array | null;
  cancel_reason: string;
  retry_policy: Uint8Array | null;
  not_before_ms: number | null;
  used_attempts: number;
  lost_attempts: number;
  failure_reason: string;
  attempts: Uint8Array | null;
  attempt_worker: string;
  attempt_started_ms: number | null;
  attempt_base: number;
  /** Job.waiting_for as a JSON array of job ids; NULL: none. */
  waiting_for: string | null;
}

/** The columns {@link viewOfRow} reads, for queries that need no more. */
export const VIEW_COLUMNS =
  "id, job_id, queue, state, attempt, lease_expires_at_ms, cancel_reason, result, retry_policy, " +
  "not_before_ms, used_attempts, lost_attempts, failure_reason, attempt_worker, " +
  "attempt_started_ms, attempt_base, highest_sequence, waiting_for";

/** A row read with {@link VIEW_COLUMNS}. */
export type ViewRow = Pick<
  JobRow,
  | "id"
  | "job_id"
  | "queue"
  | "state"
  | "attempt"
  | "lease_expires_at_ms"
  | "cancel_reason"
  | "result"
  | "retry_policy"
  | "not_before_ms"
  | "used_attempts"
  | "lost_attempts"
  | "failure_reason"
  | "attempt_worker"
  | "attempt_started_ms"
  | "attempt_base"
  | "highest_sequence"
  | "waiting_for"
>;

/** What the lifecycle reads of a row. */
export function viewOfRow(row: ViewRow): JobView {
  return {
    jobId: row.job_id,
    queue: row.queue,
    state: row.state,
    attempt: row.attempt,
    leaseExpiresAtMs: row.lease_expires_at_ms ?? 0,
    cancelReason: row.cancel_reason,
    // Only finished jobs have a result, so running ones decode nothing.
    result: row.result === null ? undefined : fromBinary(JobResultSchema, row.result),
    retry: row.retry_policy === null ? undefined : fromBinary(RetryPolicySchema, row.retry_policy),
    notBeforeMs: row.not_before_ms ?? 0,
    usedAttempts: row.used_attempts,
    lostAttempts: row.lost_attempts,
    failureReason: row.failure_reason,
  };
}

/** The attempt the row's current lease opened (also for a lease that ran out unrecorded). */
export function openAttemptOfRow(row: ViewRow): OpenAttempt {
  return {
    number: row.attempt,
    worker: row.attempt_worker,
    startedAtMs: row.attempt_started_ms ?? 0,
    sequenceBase: BigInt(row.attempt_base),
  };
}

/** The row's attempts: the ended ones, then the running one. */
function attemptsOfRow(row: JobRow): JobAttempt[] {
  const ended = row.attempts === null ? [] : fromBinary(JobSchema, row.attempts).attempts;
  if (row.state === JobState.RUNNING) {
    ended.push(runningAttempt(openAttemptOfRow(row), BigInt(row.highest_sequence)));
  }
  return ended;
}

/** The Job message of a row. */
export function jobFromRow(row: JobRow): Job {
  return create(JobSchema, {
    jobId: row.job_id,
    jobParams: fromBinary(JobParamsSchema, row.params) as JobParams,
    state: row.state,
    createdAt: timestampFromMs(row.created_at_ms),
    updatedAt: timestampFromMs(row.updated_at_ms),
    executionConfig: fromBinary(ExecutionConfigSchema, row.execution_config),
    queue: row.queue,
    attempt: row.attempt,
    ...(row.result === null ? {} : { result: fromBinary(JobResultSchema, row.result) }),
    cancelReason: row.cancel_reason,
    ...(row.not_before_ms === null ? {} : { notBefore: timestampFromMs(row.not_before_ms) }),
    attempts: attemptsOfRow(row),
    failureReason: row.failure_reason,
    waitingFor: waitingForOfRow(row),
  });
}

/**
 * The job ids of a row's waiting_for (none when NULL).
 * @throws {TypeError} when the column holds anything but a JSON array of strings.
 */
export function waitingForOfRow(row: Pick<JobRow, "waiting_for">): string[] {
  if (row.waiting_for === null) return [];
  const ids: unknown = JSON.parse(row.waiting_for);
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === "string")) {
    throw new TypeError(`waiting_for ${row.waiting_for} is not a list of job ids`);
  }
  return ids;
}

/**
 * The WHERE clause of a listing. The state is written in as a literal, not
 * bound: only then can SQLite use the partial index of that state. Each
 * metadata pair is bound, and found through job_metadata (jobs stored
 * before schema 7 have no pairs there, see schema.ts).
 */
export function listingFilter(
  query: Pick<
    ListJobsQuery,
    "queue" | "state" | "metadata" | "owner" | "createdAfterMs" | "createdBeforeMs"
  >,
): {
  filter: string;
  args: (string | number)[];
} {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (query.owner !== undefined) {
    where.push("owner = ?");
    args.push(query.owner);
  }
  if (query.createdAfterMs !== undefined) {
    where.push("created_at_ms >= ?");
    args.push(query.createdAfterMs);
  }
  if (query.createdBeforeMs !== undefined) {
    where.push("created_at_ms < ?");
    args.push(query.createdBeforeMs);
  }
  if (query.queue !== undefined) {
    where.push("queue = ?");
    args.push(query.queue);
  }
  if (query.state !== undefined) {
    if (!Number.isSafeInteger(query.state)) {
      throw new TypeError(`state ${query.state} is not a number`);
    }
    where.push(`state = ${query.state}`);
  }
  for (const [key, value] of Object.entries(query.metadata ?? {})) {
    where.push("id IN (SELECT job FROM job_metadata WHERE key = ? AND value = ?)");
    args.push(key, value);
  }
  return { filter: where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`, args };
}
