/**
 * Running one leased job: start its command, stream its output as batched
 * events, keep its lease, enforce its timeout, and report how it ended.
 *
 * Events of one attempt, in order: PROCESS_START, OUTPUT_BATCH..., then
 * PROCESS_END; or PROCESS_ERROR alone when the command cannot start. A
 * timeout adds PROCESS_ERROR ("timed out ...") before PROCESS_END; a
 * shutdown adds PROCESS_ERROR after it. Output read before a lifecycle event
 * is always published before it.
 *
 * How an attempt ends:
 * - the command exits: the job is completed (COMPLETED on 0, else FAILED);
 * - it cannot start (not found, not runnable, its repository cannot be
 *   checked out): FAILED at once, never redelivered;
 * - the lease is lost: the command is stopped and nothing is completed (the
 *   attempt that holds the job now will report);
 * - the server refuses the job's events: the command is stopped and the job
 *   FAILED with the reason;
 * - the worker stops (`stop` aborts): the command is stopped and the job is
 *   handed back to the queue. Everything after `stop` is bounded in time.
 *
 * @module
 */
import {
  contextFromTraceparent,
  inSpan,
  SpanKind,
  TRACEPARENT_METADATA_KEY,
} from "../telemetry/tracing.ts";
import type { JobResult } from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { LeasedJob } from "../protocol/job_requests.ts";
import { runAttempt } from "./attempt_run.ts";
import type { JobGroups } from "./job_groups.ts";
import type { RunAsUser } from "./run_as.ts";
import type { WorkerApi } from "./worker_api.ts";

export { TIMEOUT_EXIT_CODE } from "./attempt_outcome.ts";
export { STOP_CLEANUP_MS } from "./attempt_run.ts";

/** What job execution needs from the worker. */
export interface JobExecutionDeps {
  readonly api: WorkerApi;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The worker's environment, which the job's own entries override. */
  readonly baseEnv: Readonly<Record<string, string>>;
  readonly visibilityTimeoutSeconds: number;
  /** Between SIGTERM and SIGKILL when a job must stop. */
  readonly killGraceMs: number;
  /** Longest spent publishing and handing back after `stop` (default {@link STOP_CLEANUP_MS}). */
  readonly stopCleanupMs?: number;
  /** Where jobs' repositories are checked out. */
  readonly workspaceRoot: string;
  /** Leave workspaces in place after their jobs (for debugging). */
  readonly keepWorkspaces: boolean;
  /** Told of every job process group started and ended, so none outlives the worker. */
  readonly groups?: JobGroups;
  /** Run jobs as this user, each with a home of its own (see run_as.ts). */
  readonly runAs?: RunAsUser;
}

/** How an execution ended. */
export type JobOutcome =
  | { readonly kind: "completed"; readonly result: JobResult }
  /** The lease was lost (a newer attempt holds the job): nothing was completed. */
  | { readonly kind: "lease_lost"; readonly reason: unknown }
  /** The worker stopped the job and handed it back for another attempt. */
  | { readonly kind: "handed_back" }
  /** The worker stopped and could not report; the lease will expire. */
  | { readonly kind: "abandoned"; readonly reason: unknown };

/**
 * Runs `leased` to its end (see the module comment for the outcomes), in a
 * span that continues the trace its submitter started (the job's
 * `traceparent` metadata), so the job's whole life is one trace.
 */
export function executeJob(
  leased: LeasedJob,
  deps: JobExecutionDeps,
  stop: AbortSignal,
): Promise<JobOutcome> {
  const { job } = leased;
  return inSpan("airunner.job", {
    kind: SpanKind.CONSUMER,
    parent: contextFromTraceparent(job.jobParams?.metadata[TRACEPARENT_METADATA_KEY]),
    attributes: {
      "airunner.job_id": job.jobId,
      "airunner.queue": job.queue,
      "airunner.attempt": job.attempt,
    },
  }, async (span) => {
    const outcome = await runAttempt(leased, deps, stop);
    span.setAttribute("airunner.outcome", outcome.kind);
    if (outcome.kind === "completed") {
      span.setAttribute("airunner.exit_code", outcome.result.exitCode);
    }
    return outcome;
  });
}
