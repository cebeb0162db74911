/**
 * A job's attempt list (Job.attempts), built the same way by every backend
 * from what it stores: the attempt a lease opened (its worker, start and
 * sequence base) and how the lifecycle says it ended. Pure.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type AttemptEndEvent,
  type JobAttempt,
  JobAttemptSchema,
  type JobEvent,
} from "../../gen/job/v1/job_pb.ts";
import { makeEvent } from "../protocol/event_sequencing.ts";
import { isRedrivable } from "../protocol/attempts.ts";
import { MAX_ATTEMPT_ERROR_LENGTH, MAX_RECORDED_ATTEMPTS } from "../protocol/limits.ts";
import type { AttemptEnd, Finish, Reschedule } from "./lifecycle.ts";
import { countStoreMetric } from "./store_meter.ts";

/** What a backend keeps of the attempt its current lease opened. */
export interface OpenAttempt {
  readonly number: number;
  /** The worker's name as it gave it at dequeue ("" when it gave none). */
  readonly worker: string;
  readonly startedAtMs: number;
  /** The job's highest sequence when the attempt began: its events come after. */
  readonly sequenceBase: bigint;
}

/** The entry of an attempt that is still running, as of `highestSequence`. */
export function runningAttempt(open: OpenAttempt, highestSequence: bigint): JobAttempt {
  return create(JobAttemptSchema, {
    number: open.number,
    worker: open.worker,
    startedAt: timestampFromMs(open.startedAtMs),
    ...sequenceRange(open.sequenceBase, highestSequence),
  });
}

/**
 * The entry of an attempt that ended as `end` says, once the job's log
 * reached `highestSequence` (the attempt's own events; the ATTEMPT_END
 * notice that may follow is not among them). `open` is undefined for an
 * attempt whose lease opened none on record (a job leased before the
 * attempt list existed): its events then start after `sequenceBase`.
 */
export function closedAttempt(
  open: OpenAttempt | undefined,
  end: AttemptEnd,
  highestSequence: bigint,
  sequenceBase: bigint,
): JobAttempt {
  const attempt = runningAttempt(
    open ?? { number: end.attempt, worker: "", startedAtMs: end.endedAtMs, sequenceBase },
    highestSequence,
  );
  attempt.endedAt = timestampFromMs(end.endedAtMs);
  attempt.outcome = end.outcome;
  attempt.exitCode = end.exitCode;
  attempt.errorMessage = end.errorMessage.length > MAX_ATTEMPT_ERROR_LENGTH
    ? `${end.errorMessage.slice(0, MAX_ATTEMPT_ERROR_LENGTH - 1)}…`
    : end.errorMessage;
  return attempt;
}

/**
 * `attempts` with `entry` appended, kept to {@link MAX_RECORDED_ATTEMPTS}:
 * the first attempt and the newest ones (entries carry their numbers, so a
 * reader sees which are gone).
 */
export function appendAttempt(attempts: readonly JobAttempt[], entry: JobAttempt): JobAttempt[] {
  const all = [...attempts, entry];
  return all.length <= MAX_RECORDED_ATTEMPTS
    ? all
    : [all[0]!, ...all.slice(all.length - (MAX_RECORDED_ATTEMPTS - 1))];
}

/**
 * Whether a job whose attempt `attempt` just ended may hold a full list
 * already: it holds at most one entry per attempt number, so below the
 * bound a backend can append without reading the list first.
 */
export function mayHoldFullAttempts(attempt: number): boolean {
  return attempt > MAX_RECORDED_ATTEMPTS;
}

/** The ATTEMPT_END event a backend appends at `sequence` (the job's highest + 1). */
export function noticeEvent(notice: AttemptEndEvent, sequence: bigint, now: number): JobEvent {
  return makeEvent(sequence, now, { case: "attemptEnd", value: notice });
}

/**
 * Counts what a decision a backend just persisted did to an attempt: its
 * outcome, a retry scheduled, a job dead-lettered. Each backend calls it
 * where it writes the decision, once per decision written.
 */
export function countAttemptEnd(decision: Finish | Reschedule): void {
  if (decision.attemptEnd === undefined) return;
  countStoreMetric("airunner.jobs.attempts.total", 1, { outcome: decision.attemptEnd.outcome });
  if (decision.kind === "reschedule") {
    if (decision.notBeforeMs > 0) countStoreMetric("airunner.jobs.retries.scheduled.total", 1);
  } else if (isRedrivable(decision.failureReason)) {
    countStoreMetric("airunner.jobs.exhausted.total", 1, { reason: decision.failureReason });
  }
}

function sequenceRange(base: bigint, highest: bigint) {
  return highest > base
    ? { firstSequence: base + 1n, lastSequence: highest }
    : { firstSequence: 0n, lastSequence: 0n };
}
