/**
 * How an attempt ends, for the lifecycle (lifecycle.ts is its one caller):
 * a failure that the retry policy tries again or that ends the job, a lease
 * that ran out, a cancel that meets a stopped worker. Pure; split from
 * lifecycle.ts so that each file reads in one sitting.
 *
 * @module
 */
import { clone, create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type AttemptEndEvent,
  AttemptEndEventSchema,
  type JobResult,
  JobResultSchema,
  JobState,
} from "../../gen/job/v1/job_pb.ts";
import {
  type AttemptOutcome,
  FAILURE_REASON_EXHAUSTED,
  FAILURE_REASON_WORKER_LOST,
} from "../protocol/attempts.ts";
import type { AttemptEnd, Finish, JobView, Release, Reschedule } from "./lifecycle.ts";
import {
  attemptBudget,
  effectivePolicy,
  isRetryableResult,
  lostWorkerBudget,
  retryDelayMs,
} from "./retry_policy.ts";

/** What a cancelled job's result adds when its lease ended without a completion. */
export const WORKER_STOPPED_DETAIL = " (its worker stopped before finishing)";

/** A failed attempt's end: another attempt after its backoff, or the job's end. */
export function failedAttempt(view: JobView, result: JobResult, now: number): Finish | Reschedule {
  const policy = effectivePolicy(view.retry);
  const outcome: AttemptOutcome = result.timedOut ? "timed_out" : "failed";
  const ended = attemptEndOf(view, outcome, result, now);
  const used = view.usedAttempts + 1;
  const budget = attemptBudget(policy);
  if (policy.maxRetries === 0 || !isRetryableResult(policy, result)) {
    return finish(JobState.FAILED, result, "", ended);
  }
  if (used < budget) {
    // Lost workers use attempts but not backoff: the retry index counts failures only.
    const failedRetry = used - view.lostAttempts - 1;
    const notBeforeMs = now + retryDelayMs(policy, view.jobId, failedRetry);
    return {
      kind: "reschedule",
      state: JobState.SCHEDULED,
      readyAtMs: notBeforeMs,
      notBeforeMs,
      usedAttempts: used,
      lostAttempts: view.lostAttempts,
      attemptEnd: ended,
      notice: noticeOf(ended, used, budget, notBeforeMs),
    };
  }
  const last = result.timedOut ? "the last timed out" : `last exit ${result.exitCode}`;
  const exhausted = clone(JobResultSchema, result);
  const lost = view.lostAttempts > 0 ? ` (${lostWorkers(view.lostAttempts)})` : "";
  exhausted.errorMessage = `${used} of ${Math.max(used, budget)} attempts failed${lost}; ${last}`;
  return finish(JobState.FAILED, exhausted, FAILURE_REASON_EXHAUSTED, ended);
}

/**
 * A lease that ran out without a completion: the attempt is lost and
 * counts; the job runs again at once while its lost-worker budget lasts
 * (retry_policy.ts), or ends CANCELLED when a cancel was asked for.
 */
export function lostLease(view: JobView, now: number): Release {
  if (view.cancelReason !== "") return cancelledRelease(view, now);
  const endedAtMs = view.leaseExpiresAtMs;
  const ended = attemptEnd(
    view,
    "lost",
    0,
    "its lease ran out: the worker died or lost the server",
    endedAtMs,
  );
  const used = view.usedAttempts + 1;
  const lost = view.lostAttempts + 1;
  const budget = lostWorkerBudget(effectivePolicy(view.retry));
  if (used < budget) {
    return {
      kind: "reschedule",
      state: JobState.SCHEDULED,
      readyAtMs: endedAtMs,
      notBeforeMs: 0,
      usedAttempts: used,
      lostAttempts: lost,
      attemptEnd: ended,
      notice: noticeOf(ended, used, budget, 0),
    };
  }
  const result = create(JobResultSchema, {
    jobId: view.jobId,
    success: false,
    errorMessage: `worker lost ${lost} times`,
    completedAt: timestampFromMs(now),
  });
  return finish(JobState.FAILED, result, FAILURE_REASON_WORKER_LOST, ended);
}

/** A job a cancel was asked for, found not running (any more): it ends CANCELLED. */
export function cancelledRelease(view: JobView, now: number): Finish {
  // Once leased, its worker stopped before finishing; never leased, it just waited.
  const running = view.state === JobState.RUNNING;
  const ended = running
    ? attemptEnd(view, "cancelled", 0, "cancelled; its worker stopped before finishing", now)
    : undefined;
  return cancelledFinish(
    view.jobId,
    view.cancelReason,
    running ? WORKER_STOPPED_DETAIL : "",
    now,
    ended,
  );
}

export function cancelledFinish(
  jobId: string,
  reason: string,
  detail: string,
  now: number,
  ended: AttemptEnd | undefined,
): Finish {
  const result = create(JobResultSchema, {
    jobId,
    success: false,
    errorMessage: `cancelled: ${reason}${detail}`,
    completedAt: timestampFromMs(now),
  });
  return finish(JobState.CANCELLED, result, "", ended);
}

export function finish(
  state: JobState,
  result: JobResult,
  failureReason: string,
  ended: AttemptEnd | undefined,
): Finish {
  return { kind: "finish", state, result, failureReason, attemptEnd: ended };
}

export function attemptEnd(
  view: JobView,
  outcome: AttemptOutcome,
  exitCode: number,
  errorMessage: string,
  endedAtMs: number,
): AttemptEnd {
  return { attempt: view.attempt, outcome, exitCode, errorMessage, endedAtMs };
}

export function attemptEndOf(
  view: JobView,
  outcome: AttemptOutcome,
  result: JobResult,
  now: number,
): AttemptEnd {
  return attemptEnd(view, outcome, result.exitCode, result.errorMessage, now);
}

function lostWorkers(n: number): string {
  return n === 1 ? "1 to a lost worker" : `${n} to lost workers`;
}

/**
 * The ATTEMPT_END event that tells followers the job goes on. Attempt
 * numbers count every lease (a hand-back's too, and those before a
 * redrive), while the budget counts only the attempts this policy has used,
 * so the last attempt allowed is this one plus what the budget has left.
 */
function noticeOf(
  ended: AttemptEnd,
  used: number,
  budget: number,
  notBeforeMs: number,
): AttemptEndEvent {
  return create(AttemptEndEventSchema, {
    attempt: ended.attempt,
    outcome: ended.outcome,
    exitCode: ended.exitCode,
    errorMessage: ended.errorMessage,
    nextAttempt: ended.attempt + 1,
    attemptsAllowed: ended.attempt + (budget - used),
    ...(notBeforeMs > 0 ? { nextNotBefore: timestampFromMs(notBeforeMs) } : {}),
  });
}
