/**
 * When a job's SQS message shows up again, as the lifecycle's not-before
 * time asks (pure logic). A retry's message is sent with a delay, which SQS
 * caps at 15 minutes; a message that shows up before its job is due (a
 * longer wait, or an early duplicate) is put back in flight for the rest of
 * the wait, which SQS caps at 12 hours, and so on until the job is due. The
 * message only wakes a dequeue: whether the job may be leased is the job
 * item's to say (decideLease), so an early message never leases early.
 *
 * @module
 */
import { SQS_MAX_VISIBILITY_SECONDS } from "./aws_limits.ts";

/** SQS's longest DelaySeconds. */
export const SQS_MAX_DELAY_SECONDS = 900;

/**
 * The DelaySeconds of a message for a job due at `notBeforeMs`: the whole
 * wait rounded up (never early by rounding), at most `maxDelaySeconds`.
 */
export function delaySecondsUntil(
  notBeforeMs: number,
  nowMs: number,
  maxDelaySeconds: number,
): number {
  const waitMs = notBeforeMs - nowMs;
  if (waitMs <= 0) return 0;
  return Math.min(maxDelaySeconds, Math.ceil(waitMs / 1000));
}

/**
 * The visibility that puts back a message received before its job is due
 * at `notBeforeMs`: the rest of the wait in whole seconds, at least 1 (so a
 * job due within the second is not spun on), at most SQS's cap.
 */
export function visibilitySecondsUntil(notBeforeMs: number, nowMs: number): number {
  const rest = Math.ceil((notBeforeMs - nowMs) / 1000);
  return Math.min(SQS_MAX_VISIBILITY_SECONDS, Math.max(1, rest));
}
