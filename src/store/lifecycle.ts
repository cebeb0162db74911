/**
 * The job lifecycle: every state change of a job as a pure decision, shared
 * by every backend. Each function takes what the backend has stored of a job
 * (a {@link JobView}), the request and the time, and answers what is to
 * happen, as data; the backend persists that answer and decides nothing on
 * its own. A refusal is a typed {@link StoreError}, thrown.
 *
 * ```
 *              enqueue (decideEnqueue)
 *                 │
 *                 ▼
 *   ┌──────── SCHEDULED ◀─────────────────────────────┐
 *   │             │ lease (decideLease: attempt + 1)   │ lease ran out (decideExpiry),
 *   │             ▼                                    │ or handed back (decideHandBack)
 *   │          RUNNING ───────────────────────────────┘
 *   │             │ │ extend (decideExtend), publish (decidePublish):
 *   │             │ │ only the current attempt, while its lease lasts (the fence)
 *   │             │ └ cancel (decideCancel): marked; the holder learns it at its
 *   │             │   next extension, and the job ends CANCELLED however it stops
 *   │             │ complete (decideCompletion)
 *   │             ├── cancel marked ──▶ CANCELLED
 *   │             ├── success ────────▶ COMPLETED
 *   │             ├── failure, retries left ──▶ SCHEDULED, not before its backoff
 *   │             └── failure ────────▶ FAILED (failure_reason "exhausted" once
 *   │                                   it used every attempt it had)
 *   └── cancel ──▶ CANCELLED
 * ```
 *
 * Attempts: every lease starts one, and every decision that ends one says
 * how ({@link AttemptEnd}), for the backend to record in the job's attempt
 * list. A lease that runs out counts as an attempt: a job that keeps killing
 * its worker ends FAILED ("worker lost 3 times", failure_reason
 * "worker_lost") instead of coming back forever. When an attempt ends and
 * another follows (a retry, a lost worker), the decision carries the
 * ATTEMPT_END event the backend appends to the job's log, so followers can
 * say so between the attempts' output. The retry rules themselves (which
 * exit codes, how long to wait) are retry_policy.ts's.
 *
 * Time: every decision reads the view as of `now`. A RUNNING job whose lease
 * has run out counts as what its expiry makes of it (SCHEDULED, or CANCELLED
 * when a cancel was asked for; see {@link stateAt}) whether or not the
 * backend has written that yet: the embedded stores write expiries as soon as
 * they see them ({@link decideExpiry}); the AWS store may leave them to be
 * read this way.
 *
 * Extending this module: a new job option is a new decision here (a delay is
 * a field of the enqueue decision, a retry a kind of completion decision,
 * priorities, dependencies and concurrency keys decide in
 * {@link decideLease}) plus its persistence in each backend. Decisions are
 * discriminated unions on `kind`, so a backend's `switch` fails to type-check
 * until it handles a new kind.
 *
 * @module
 */
import { clone } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type AttemptEndEvent,
  type JobParams,
  type JobResult,
  JobResultSchema,
  JobState,
  type RetryPolicy,
} from "../../gen/job/v1/job_pb.ts";
import { isFinished } from "../protocol/job_state.ts";
import { DEFAULT_CANCEL_REASON } from "../protocol/job_requests.ts";
import {
  IdempotencyConflictError,
  JobFinishedError,
  JobMismatchError,
  JobNotRedrivableError,
  LeaseLostError,
  QueueMismatchError,
} from "./errors.ts";
import { isCompletionResend } from "./batch.ts";
import { sameJobParams } from "./idempotency.ts";
import type { TaskTokenClaims } from "./task_token.ts";
import { checkRunAtNotPast, startNotBeforeMs } from "../protocol/timing_validation.ts";

export { startNotBeforeMs };
import { isDeadLetter } from "../protocol/attempts.ts";
import type { AttemptOutcome } from "../protocol/attempts.ts";
import {
  attemptEnd,
  attemptEndOf,
  cancelledFinish,
  cancelledRelease,
  failedAttempt,
  finish,
  lostLease,
} from "./attempt_endings.ts";

export { WORKER_STOPPED_DETAIL } from "./attempt_endings.ts";

// ---------------------------------------------------------------- inputs

/**
 * What the lifecycle reads of a stored job. Each backend maps its row or
 * item to this; nothing here knows how it is stored.
 */
export interface JobView {
  readonly jobId: string;
  readonly queue: string;
  /** The state as stored (see {@link stateAt} for the state as of a time). */
  readonly state: JobState;
  /** Attempts started so far: 0 before the first lease, then 1, 2, ... */
  readonly attempt: number;
  /** Unix ms at which the current attempt's lease ends; read only while RUNNING. */
  readonly leaseExpiresAtMs: number;
  /** Why a cancel was asked for; the empty string while none was. */
  readonly cancelReason: string;
  /** The recorded result; read only once the job has finished (to recognise a resend). */
  readonly result: JobResult | undefined;
  /** The job's retry policy (unset: no retries). */
  readonly retry: RetryPolicy | undefined;
  /** While SCHEDULED after a failed attempt: no lease before this Unix ms; 0: none. */
  readonly notBeforeMs: number;
  /** Attempts that failed, timed out or were lost so far (hand-backs do not count). */
  readonly usedAttempts: number;
  /** Of those, the attempts whose lease ran out without a completion. */
  readonly lostAttempts: number;
  /** Why a FAILED job failed for good ("exhausted", "worker_lost"); "" otherwise. */
  readonly failureReason: string;
}

/** Who acts on a lease: the claims of a verified task token (its signature is checked before). */
export type LeaseHolder = Pick<TaskTokenClaims, "attempt">;

/** What an enqueue with a request_id finds: the job an earlier enqueue with it made. */
export interface EnqueuedView {
  readonly jobId: string;
  readonly queue: string;
  readonly params: JobParams;
}

// ---------------------------------------------------------------- decisions

/**
 * How an attempt ended. The backend records it in the job's attempt list,
 * with what only it knows: the worker, the start, the event range (see
 * attempt_records.ts).
 */
export interface AttemptEnd {
  /** The attempt's number. */
  readonly attempt: number;
  readonly outcome: AttemptOutcome;
  readonly exitCode: number;
  readonly errorMessage: string;
  readonly endedAtMs: number;
}

/** The job ends for good, with this state and result. */
export interface Finish {
  readonly kind: "finish";
  /** COMPLETED, FAILED or CANCELLED. */
  readonly state: JobState;
  /** The result to record (a copy the backend may keep). */
  readonly result: JobResult;
  /** Why a FAILED job failed for good: "exhausted", "worker_lost", or "" (no retry applied). */
  readonly failureReason: string;
  /** The attempt this ends, if one was running (a job cancelled while it waited has none). */
  readonly attemptEnd: AttemptEnd | undefined;
}

/**
 * The job goes back to its queue, SCHEDULED, for its next attempt; its
 * lease ends. After a failed attempt it waits for its backoff
 * (`notBeforeMs`); after a lost or handed-back one it is due at once.
 */
export interface Reschedule {
  readonly kind: "reschedule";
  readonly state: JobState.SCHEDULED;
  /**
   * Its place in the queue once due: work scheduled again is served before
   * newer work, earliest first (when its lease ended, or when its backoff
   * ends).
   */
  readonly readyAtMs: number;
  /** No lease before this Unix ms; 0: at once. */
  readonly notBeforeMs: number;
  /** The counters to store (see {@link JobView}). */
  readonly usedAttempts: number;
  readonly lostAttempts: number;
  readonly attemptEnd: AttemptEnd;
  /**
   * The payload of the ATTEMPT_END event to append to the job's log (after
   * the attempt's own events); undefined for a hand-back, which retries
   * nothing.
   */
  readonly notice: AttemptEndEvent | undefined;
}

/** What ends a lease that no completion ended: the job runs again, or ends (CANCELLED, or FAILED when its lost workers used its attempts). */
export type Release = Reschedule | Finish;

/**
 * Store a new job in this state; with `notBeforeMs` > 0 (a delayed start)
 * it waits out of the queue's order until then, as a retry's backoff does.
 */
export interface CreateDecision {
  readonly kind: "create";
  readonly state: JobState.SCHEDULED;
  readonly attempt: 0;
  readonly notBeforeMs: number;
}

/** The outcome of {@link decideEnqueue}. */
export type EnqueueDecision =
  /** Store a new job. */
  | CreateDecision
  /** The request_id made this job before: answer with it and store nothing. */
  | { readonly kind: "existing"; readonly jobId: string };

/** A lease starts: the job is RUNNING on a new attempt until `leaseExpiresAtMs`. */
export interface Lease {
  readonly kind: "lease";
  readonly state: JobState.RUNNING;
  /** The new attempt's number (the view's attempt + 1); the task token names it. */
  readonly attempt: number;
  readonly leaseExpiresAtMs: number;
  /**
   * When the job was still RUNNING on a lease that ran out: how that lease
   * ended, to persist with the new one (the embedded stores end expired
   * leases before they lease, so only the AWS store meets this).
   */
  readonly lost: Reschedule | undefined;
}

/**
 * The job cannot be leased: it is running on a live lease, finished, or
 * waiting out its backoff (`not_due`).
 */
export interface Skip {
  readonly kind: "skip";
  readonly reason: "running" | "finished" | "not_due";
}

/**
 * The outcome of {@link decideLease} for one job a dequeue found: lease it,
 * end it (a cancel was asked for while it waited, or its lost workers used
 * its attempts), or pass it by.
 */
export type LeaseDecision = Lease | Finish | Skip;

/** The outcome of {@link decideExtend}; `cancelled` is what the holder is told. */
export type ExtendDecision =
  /** The lease now ends at `leaseExpiresAtMs`. */
  | { readonly kind: "extend"; readonly leaseExpiresAtMs: number; readonly cancelled: boolean }
  /** A visibility of 0: the holder hands the job back (see {@link decideHandBack}). */
  | { readonly kind: "handBack"; readonly release: Release; readonly cancelled: boolean };

/** The outcome of {@link decideExpiry}: nothing to do yet, or what the lease's end makes of the job. */
export type ExpiryDecision = { readonly kind: "keep" } | Release;

/** The outcome of {@link decidePublish}: the holder may append to the job's log. */
export interface PublishDecision {
  readonly kind: "publish";
}

/**
 * The outcome of {@link decideCompletion}: the job ends, or waits for its
 * next attempt (a retry), or the call repeats the completion recorded.
 */
export type CompletionDecision = Finish | Reschedule | { readonly kind: "resend" };

/** The reason part of {@link CancelDecision}. */
export interface CancelReason {
  /** The reason the job keeps: the first one asked for (later cancels keep it). */
  readonly cancelReason: string;
  /** Whether `cancelReason` is new, and so is to be written. */
  readonly newReason: boolean;
}

/**
 * The outcome of {@link decideCancel}: a waiting job ends CANCELLED at once;
 * a running one is marked, and its lease holder learns it at its next
 * extension.
 */
export type CancelDecision =
  | (CancelReason & { readonly kind: "mark" })
  | (CancelReason & Finish);

/**
 * The outcome of {@link decideRedrive}: the job is SCHEDULED again, due at
 * once, with a fresh retry budget; its id, attempts and events stay.
 */
export interface Redrive {
  readonly kind: "redrive";
  readonly state: JobState.SCHEDULED;
  readonly readyAtMs: number;
  readonly usedAttempts: 0;
  readonly lostAttempts: 0;
}

// ---------------------------------------------------------------- rules

/** The reason a cancel records: the one given, or {@link DEFAULT_CANCEL_REASON} for none. */
export function cancelReasonFor(reason: string): string {
  return reason === "" ? DEFAULT_CANCEL_REASON : reason;
}

/** Whether the job is RUNNING on a lease that has run out by `now`. */
export function leaseExpired(view: JobView, now: number): boolean {
  return view.state === JobState.RUNNING && view.leaseExpiresAtMs <= now;
}

/**
 * The job's state as of `now`: the stored one, except that a RUNNING job
 * whose lease ran out is what {@link decideExpiry} makes of it: SCHEDULED
 * again, CANCELLED when a cancel was asked for, or FAILED when its lost
 * workers used its attempts.
 */
export function stateAt(view: JobView, now: number): JobState {
  if (!leaseExpired(view, now)) return view.state;
  return lostLease(view, now).state;
}

/**
 * The fence: passes when `holder`'s attempt is the job's current one and its
 * lease lasts at `now`.
 * @throws {LeaseLostError} otherwise, saying why.
 */
export function checkLease(view: JobView, holder: LeaseHolder, now: number): void {
  if (view.attempt !== holder.attempt) {
    throw new LeaseLostError(
      view.jobId,
      `attempt ${holder.attempt} was superseded by attempt ${view.attempt}`,
    );
  }
  const state = stateAt(view, now);
  if (state !== JobState.RUNNING) {
    throw new LeaseLostError(
      view.jobId,
      isFinished(state)
        ? "the job has finished"
        : "the lease expired or was handed back, and the job was scheduled again",
    );
  }
}

/**
 * An enqueue: a new SCHEDULED job, or, when `existing` (the job the
 * request's request_id made before) asks for the same job, that one.
 * @throws {IdempotencyConflictError} when the request_id was used for a different job.
 * @throws {InvalidArgumentError} for a new job whose run_at is long past.
 */
export function decideEnqueue(
  existing: EnqueuedView | undefined,
  request: { readonly requestId: string; readonly queue: string; readonly params: JobParams },
  now: number,
): EnqueueDecision {
  if (existing === undefined) return decideNewJob(request.params, now);
  if (existing.queue !== request.queue || !sameJobParams(existing.params, request.params)) {
    throw new IdempotencyConflictError(request.requestId, existing.jobId);
  }
  return { kind: "existing", jobId: existing.jobId };
}

/**
 * A new job: SCHEDULED, no attempt yet, its first attempt due at its
 * delayed start (0: at once).
 * @throws {InvalidArgumentError} for a run_at long past.
 */
export function decideNewJob(params: JobParams, now: number): CreateDecision {
  checkRunAtNotPast(params, now);
  return {
    kind: "create",
    state: JobState.SCHEDULED,
    attempt: 0,
    notBeforeMs: startNotBeforeMs(params, now),
  };
}

/**
 * A dequeue found this job: lease it for `visibilityTimeoutMs` when it is
 * waiting and due (SCHEDULED past its not-before time, or RUNNING on a lease
 * that ran out), end it when a cancel was asked for or its lost workers used
 * its attempts, or skip it.
 */
export function decideLease(
  view: JobView,
  request: { readonly visibilityTimeoutMs: number },
  now: number,
): LeaseDecision {
  let lost: Reschedule | undefined;
  if (leaseExpired(view, now)) {
    const ended = lostLease(view, now);
    if (ended.kind === "finish") return ended;
    lost = ended;
  } else if (view.state === JobState.RUNNING) {
    return { kind: "skip", reason: "running" };
  }
  if (isFinished(view.state)) return { kind: "skip", reason: "finished" };
  if (view.cancelReason !== "") return cancelledRelease(view, now);
  if (lost === undefined && view.notBeforeMs > now) return { kind: "skip", reason: "not_due" };
  return {
    kind: "lease",
    state: JobState.RUNNING,
    attempt: view.attempt + 1,
    leaseExpiresAtMs: now + request.visibilityTimeoutMs,
    lost,
  };
}

/**
 * A lease holder asks to keep its lease `visibilityTimeoutMs` more from
 * `now`; 0 (or less) hands the job back. The answer tells it whether the job
 * was cancelled.
 * @throws {LeaseLostError} when the holder's lease is over (see {@link checkLease}).
 * @throws {QueueMismatchError} when `request.queue` is not the job's queue.
 */
export function decideExtend(
  view: JobView,
  holder: LeaseHolder,
  request: { readonly queue: string; readonly visibilityTimeoutMs: number },
  now: number,
): ExtendDecision {
  checkLease(view, holder, now);
  if (view.queue !== request.queue) throw new QueueMismatchError(view.queue, request.queue);
  const cancelled = view.cancelReason !== "";
  if (request.visibilityTimeoutMs <= 0) {
    return { kind: "handBack", release: decideHandBack(view, holder, now), cancelled };
  }
  return { kind: "extend", leaseExpiresAtMs: now + request.visibilityTimeoutMs, cancelled };
}

/**
 * A lease holder gives its job back unfinished (its worker is stopping): it
 * runs again at once on a new attempt, which uses none of its retries, or
 * ends CANCELLED when a cancel was asked for.
 * @throws {LeaseLostError} when the holder's lease is over.
 */
export function decideHandBack(view: JobView, holder: LeaseHolder, now: number): Release {
  checkLease(view, holder, now);
  if (view.cancelReason !== "") return cancelledRelease(view, now);
  return {
    kind: "reschedule",
    state: JobState.SCHEDULED,
    readyAtMs: now,
    notBeforeMs: 0,
    usedAttempts: view.usedAttempts,
    lostAttempts: view.lostAttempts,
    attemptEnd: attemptEnd(view, "handed_back", 0, "its worker stopped and handed it back", now),
    notice: undefined,
  };
}

/**
 * What the end of a lease that ran out makes of the job: nothing while it
 * lasts (or when the job is not running); else the lost attempt counts, and
 * the job runs again at once, ordered by when the lease ended, or ends
 * CANCELLED when a cancel was asked for, or FAILED ("worker lost N times")
 * once its lost workers used its attempts.
 */
export function decideExpiry(view: JobView, now: number): ExpiryDecision {
  if (!leaseExpired(view, now)) return { kind: "keep" };
  return lostLease(view, now);
}

/**
 * A lease holder asks to append events to the job's log.
 * @throws {LeaseLostError} when its lease is over.
 */
export function decidePublish(view: JobView, holder: LeaseHolder, now: number): PublishDecision {
  checkLease(view, holder, now);
  return { kind: "publish" };
}

/**
 * A lease holder reports `result`: the job ends CANCELLED when a cancel was
 * asked for, COMPLETED on success; a failure is retried after its backoff
 * when the retry policy allows it and attempts are left, else the job ends
 * FAILED (reason "exhausted" once it used every attempt). The same
 * completion sent again by the attempt it was recorded for is a resend,
 * which changes nothing.
 * @throws {LeaseLostError} when the holder's lease is over and the call is no resend.
 * @throws {JobMismatchError} when `result` names another job.
 */
export function decideCompletion(
  view: JobView,
  holder: LeaseHolder,
  result: JobResult,
  now: number,
): CompletionDecision {
  if (view.attempt === holder.attempt && isRecordedCompletion(view, result)) {
    return { kind: "resend" };
  }
  checkLease(view, holder, now);
  if (result.jobId !== view.jobId) throw new JobMismatchError(view.jobId, result.jobId);
  const stored = clone(JobResultSchema, result);
  stored.completedAt ??= timestampFromMs(now);
  if (view.cancelReason !== "") {
    return finish(JobState.CANCELLED, stored, "", attemptEndOf(view, "cancelled", stored, now));
  }
  if (result.success) {
    return finish(JobState.COMPLETED, stored, "", attemptEndOf(view, "completed", stored, now));
  }
  return failedAttempt(view, stored, now);
}

/**
 * Someone asks to cancel the job: a waiting job ends CANCELLED now (a
 * retry's backoff included), a running one is marked (cancelling it again
 * keeps the first reason).
 * @throws {JobFinishedError} when the job has finished (as of `now`).
 */
export function decideCancel(
  view: JobView,
  request: { readonly reason: string },
  now: number,
): CancelDecision {
  const state = stateAt(view, now);
  if (isFinished(state)) {
    throw new JobFinishedError(view.jobId, (JobState[state] ?? "").toLowerCase());
  }
  const newReason = view.cancelReason === "";
  const cancelReason = newReason ? cancelReasonFor(request.reason) : view.cancelReason;
  if (state === JobState.RUNNING) return { kind: "mark", cancelReason, newReason };
  return {
    ...cancelledFinish(view.jobId, cancelReason, "", now, undefined),
    cancelReason,
    newReason,
  };
}

/**
 * Someone asks to put a dead-lettered job back (`airunner redrive`): a job
 * that FAILED after using every attempt is SCHEDULED again, due now, with a
 * fresh retry budget.
 * @throws {JobNotRedrivableError} for any other job.
 */
export function decideRedrive(view: JobView, now: number): Redrive {
  const state = stateAt(view, now);
  if (!isDeadLetter(state, view.failureReason)) {
    throw new JobNotRedrivableError(
      view.jobId,
      state === JobState.FAILED
        ? "it failed without using its retries (no retry applied to its last exit)"
        : `it is ${(JobState[state] ?? "").toLowerCase()}, not failed`,
    );
  }
  return {
    kind: "redrive",
    state: JobState.SCHEDULED,
    readyAtMs: now,
    usedAttempts: 0,
    lostAttempts: 0,
  };
}

// ---------------------------------------------------------------- helpers

/**
 * Whether `result`, from the view's current attempt, is the completion
 * already recorded for it: the job finished with that result, or the
 * completion scheduled a retry (the attempt has not been superseded, so its
 * completion is what put the job in its backoff).
 */
function isRecordedCompletion(view: JobView, result: JobResult): boolean {
  if (isFinished(view.state)) return isCompletionResend(view.result, result);
  return view.state === JobState.SCHEDULED && view.notBeforeMs > 0;
}
