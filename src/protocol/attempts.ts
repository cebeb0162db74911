/**
 * The words of a job's attempts that both ends of the wire use: how an
 * attempt ended (JobAttempt.outcome, AttemptEndEvent.outcome) and why a job
 * failed for good (Job.failure_reason).
 *
 * @module
 */
// The lite enum: the CLI reads this module, and its start loads no protobuf runtime.
import { JobState } from "../../gen/job/v1/job_lite.ts";

/** How an attempt ended. */
export type AttemptOutcome =
  | "completed"
  | "failed"
  | "timed_out"
  /** Its lease ran out without a completion: the worker died or lost the server. */
  | "lost"
  /** Its worker stopped cleanly and gave the job back; this uses no retry. */
  | "handed_back"
  | "cancelled";

/** Job.failure_reason of a job whose failed attempts used every retry it had. */
export const FAILURE_REASON_EXHAUSTED = "exhausted";
/** Job.failure_reason of a job whose lost workers used its attempts. */
export const FAILURE_REASON_WORKER_LOST = "worker_lost";

/** Whether a FAILED job with this failure_reason is a dead letter, which redrive puts back. */
export function isRedrivable(failureReason: string): boolean {
  return failureReason === FAILURE_REASON_EXHAUSTED ||
    failureReason === FAILURE_REASON_WORKER_LOST;
}

/** Whether a job in `state` that failed for `failureReason` is a dead letter: FAILED after using every attempt. */
export function isDeadLetter(state: JobState, failureReason: string): boolean {
  return state === JobState.FAILED && isRedrivable(failureReason);
}
