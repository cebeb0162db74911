/**
 * The checks of when a job runs (pure): its delayed start (JobParams.delay_ms,
 * run_at) and its retry policy's counts and waits, each against its
 * documented range (protocol/limits.ts). request_validation.ts calls them
 * for every job it checks, and the CLI checks its flags with the same ones.
 *
 * @module
 */
import type { JobParams, RetryPolicy } from "../../gen/job/v1/job_pb.ts";
import { checkRange, InvalidArgumentError } from "./invalid_argument.ts";
import * as limits from "./limits.ts";
import { millis } from "./timestamp_ms.ts";

/**
 * A delayed start's shape: delay_ms or run_at, not both; delay_ms within
 * 0..366 days; run_at a valid time no more than 366 days after `nowMs`
 * (for a time in the past see {@link checkRunAtNotPast}).
 */
export function validateStartTime(params: JobParams, field: string, nowMs: number): void {
  const delay = params.delayMs;
  if (delay < 0n || delay > BigInt(limits.MAX_START_DELAY_MS)) {
    throw new InvalidArgumentError(
      `${field}.delay_ms`,
      `is ${delay}, outside 0..${limits.MAX_START_DELAY_MS} (366 days)`,
    );
  }
  if (params.runAt === undefined) return;
  if (delay > 0n) {
    throw new InvalidArgumentError(`${field}.run_at`, "and delay_ms are both set; give one");
  }
  const runAt = params.runAt;
  if (runAt.nanos < 0 || runAt.nanos > 999_999_999) {
    throw new InvalidArgumentError(
      `${field}.run_at`,
      `has nanos ${runAt.nanos}, outside 0..999999999`,
    );
  }
  const at = millis(runAt)!;
  if (at > nowMs + limits.MAX_START_DELAY_MS) {
    throw new InvalidArgumentError(
      `${field}.run_at`,
      `is ${isoOf(at)}, more than 366 days ahead`,
    );
  }
}

/**
 * Refuses a new job whose run_at lies more than a minute before `nowMs` (a
 * clock a little behind the server's is "now"; a time long gone is a
 * mistake). Only a new job: a repeat of an enqueue with its request_id
 * answers with the job it made, however late it comes, so the lifecycle
 * checks this where it decides to create one (decideEnqueue).
 */
export function checkRunAtNotPast(params: JobParams, nowMs: number, field = "job_params"): void {
  if (params.runAt === undefined) return;
  const at = millis(params.runAt)!;
  if (at < nowMs - limits.RUN_AT_PAST_TOLERANCE_MS) {
    throw new InvalidArgumentError(
      `${field}.run_at`,
      `is ${isoOf(at)}, more than a minute in the past (now ${isoOf(nowMs)})`,
    );
  }
}

/** `ms` in RFC 3339, or as a number where no Date can hold it (beyond ±275,000 years). */
function isoOf(ms: number): string {
  return Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : `${ms} ms since 1970`;
}

/**
 * A retry policy's numbers, each within its documented range (0 delays
 * stand for the defaults); exit codes 1..255 in ranges whose first is not
 * above their last.
 */
export function validateRetryPolicy(policy: RetryPolicy, field: string): void {
  checkRange(`${field}.max_retries`, policy.maxRetries, 0, limits.MAX_RETRIES);
  if (policy.retryOnExitCodes.length > limits.MAX_RETRY_EXIT_CODE_RANGES) {
    throw new InvalidArgumentError(
      `${field}.retry_on_exit_codes`,
      `has ${policy.retryOnExitCodes.length} ranges, more than the limit of ${limits.MAX_RETRY_EXIT_CODE_RANGES}`,
    );
  }
  policy.retryOnExitCodes.forEach((range, i) => {
    const where = `${field}.retry_on_exit_codes[${i}]`;
    checkRange(`${where}.first`, range.first, 1, 255);
    checkRange(`${where}.last`, range.last, range.first, 255);
  });
  const delay = (name: string, value: bigint, min: number) => {
    if (value === 0n) return;
    if (value < BigInt(min) || value > BigInt(limits.MAX_RETRY_DELAY_MS)) {
      throw new InvalidArgumentError(
        `${field}.${name}`,
        `must be 0 (the default) or between ${min} and ${limits.MAX_RETRY_DELAY_MS} ms, got ${value}`,
      );
    }
  };
  delay("min_delay_ms", policy.minDelayMs, limits.MIN_RETRY_DELAY_MS);
  // The longest wait is no shorter than the first one, the default first wait (1 s) included.
  const min = policy.minDelayMs === 0n
    ? limits.DEFAULT_RETRY_MIN_DELAY_MS
    : Number(policy.minDelayMs);
  delay("max_delay_ms", policy.maxDelayMs, min);
}

/**
 * When a new job's first attempt may start: its run_at, or `now` plus its
 * delay_ms; 0 (at once) for neither, or for a run_at that is already past.
 */
export function startNotBeforeMs(params: JobParams, now: number): number {
  const at = params.runAt === undefined
    ? (params.delayMs > 0n ? now + Number(params.delayMs) : 0)
    : millis(params.runAt)!;
  return at > now ? at : 0;
}
