/**
 * The shapes a validated request takes on its way from the wire to a store,
 * and what a lease hands a worker: shared by the server (which validates and
 * stores), the worker (which holds leases) and the stores (which persist).
 *
 * @module
 */
import type { ExecutionConfig, Job, JobParams, JobState } from "../../gen/job/v1/job_pb.ts";

/** A job to add to a queue. */
export interface EnqueueInput {
  /** Idempotency key; the empty string means "not idempotent". */
  readonly requestId: string;
  readonly queue: string;
  readonly params: JobParams;
  readonly executionConfig: ExecutionConfig;
}

/** A job together with the token that proves its lease. */
export interface LeasedJob {
  readonly job: Job;
  readonly taskToken: string;
}

/** What an extension tells the lease holder. */
export interface LeaseUpdate {
  /** Someone cancelled the job: stop the command and complete it. */
  readonly cancelled: boolean;
}

/** The reason stored when a cancel gives none. */
export const DEFAULT_CANCEL_REASON = "cancelled on request";

/** A page request of {@link JobStore.listJobs}. */
export interface ListJobsQuery {
  /** Only this queue; undefined for every queue. */
  readonly queue?: string;
  /** Only this state; undefined for every state. */
  readonly state?: JobState;
  /** Only jobs whose metadata holds every one of these pairs; undefined or empty for any. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Only jobs of this owner (JobParams.owner); undefined for any. */
  readonly owner?: string;
  /** Only jobs created at or after this Unix ms; undefined for no bound. */
  readonly createdAfterMs?: number;
  /** Only jobs created before this Unix ms; undefined for no bound. */
  readonly createdBeforeMs?: number;
  /** 1-based page number. */
  readonly page: number;
  /** Jobs per page (>= 1). */
  readonly pageSize: number;
}

/** Whether `metadata` holds every pair of a listing's `filter` (any metadata when undefined). */
export function metadataMatches(
  metadata: Readonly<Record<string, string>> | undefined,
  filter: Readonly<Record<string, string>> | undefined,
): boolean {
  if (filter === undefined) return true;
  for (const key in filter) {
    if (metadata?.[key] !== filter[key]) return false;
  }
  return true;
}

/** Whether a job of `owner`, created at `createdAtMs`, passes a listing's owner and time bounds. */
export function ownerAndTimeMatch(
  owner: string,
  createdAtMs: number,
  query: Pick<ListJobsQuery, "owner" | "createdAfterMs" | "createdBeforeMs">,
): boolean {
  return (query.owner === undefined || owner === query.owner) &&
    (query.createdAfterMs === undefined || createdAtMs >= query.createdAfterMs) &&
    (query.createdBeforeMs === undefined || createdAtMs < query.createdBeforeMs);
}
