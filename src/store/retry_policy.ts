/**
 * A job's retry policy, as the lifecycle reads it: whether an ended attempt
 * is tried again, after how long, and when the job has used up its
 * attempts. Pure; lifecycle.ts is its one caller, and every backend
 * persists what the lifecycle decides.
 *
 * The rules (README "Retries"):
 * - `max_retries` attempts after the first (default 0). A failed attempt
 *   retries when its exit code is listed in `retry_on_exit_codes`, or, with
 *   no list, when it is any non-zero code but 126 and 127 (the command
 *   cannot run; trying again will not help). A timed-out attempt retries
 *   unless `no_retry_on_timeout`.
 * - A lost worker (the lease ran out) counts as an attempt, so a job that
 *   kills its worker ends FAILED "worker lost N times" instead of coming
 *   back forever; a job without retries still gets {@link LOST_WORKER_ATTEMPTS}
 *   attempts against lost workers, so one kill -9 loses nothing. A worker
 *   that hands its job back (it stopped cleanly) does not use an attempt.
 * - The wait before retry n (from 0) is drawn from [cap / 2, cap] with
 *   cap = min(`max_delay_ms`, `min_delay_ms` × 2^(n+1)) (src/retry.ts's
 *   backoff), never below `min_delay_ms`: 1-2 s, 2-4 s, 4-8 s, ... for a
 *   1 s minimum. Every wait, the first too, has jitter, so jobs that failed
 *   together (a database down) do not all come back in the same second.
 *   The draw is a hash of the job id and the retry, not Math.random, so the
 *   same decision comes out on every replay of it (a retried write on AWS,
 *   a restart). Only the retries that followed a failure step the backoff;
 *   a lost worker runs again at once.
 *
 * @module
 */
import type { JobResult, RetryPolicy } from "../../gen/job/v1/job_pb.ts";
import { backoffDelayMs } from "../retry.ts";
import { DEFAULT_RETRY_MAX_DELAY_MS, DEFAULT_RETRY_MIN_DELAY_MS } from "../protocol/limits.ts";

export { DEFAULT_RETRY_MAX_DELAY_MS, DEFAULT_RETRY_MIN_DELAY_MS };

/** Attempts a job gets against lost workers when its own retries allow fewer. */
export const LOST_WORKER_ATTEMPTS = 3;
/** Exit codes no retry can help: 126 (cannot execute), 127 (not found). */
const HOPELESS_EXIT_CODES: ReadonlySet<number> = new Set([126, 127]);

/** A policy with every default filled in. */
export interface EffectivePolicy {
  readonly maxRetries: number;
  /** Inclusive [first, last] ranges; empty: any non-zero code but 126 and 127. */
  readonly retryOn: readonly (readonly [number, number])[];
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly retryOnTimeout: boolean;
}

/** `policy` (unset: no retries) with its defaults. */
export function effectivePolicy(policy: RetryPolicy | undefined): EffectivePolicy {
  const min = Number(policy?.minDelayMs ?? 0n) || DEFAULT_RETRY_MIN_DELAY_MS;
  const max = Number(policy?.maxDelayMs ?? 0n) || Math.max(min, DEFAULT_RETRY_MAX_DELAY_MS);
  return {
    maxRetries: policy?.maxRetries ?? 0,
    retryOn: (policy?.retryOnExitCodes ?? []).map((r) => [r.first, r.last] as const),
    minDelayMs: min,
    maxDelayMs: max,
    retryOnTimeout: !(policy?.noRetryOnTimeout ?? false),
  };
}

/** Whether an attempt that ended with `result` (not a success) may be tried again by its kind. */
export function isRetryableResult(policy: EffectivePolicy, result: JobResult): boolean {
  if (result.success) return false;
  if (result.timedOut) return policy.retryOnTimeout;
  const code = result.exitCode;
  if (policy.retryOn.length === 0) return code !== 0 && !HOPELESS_EXIT_CODES.has(code);
  return policy.retryOn.some(([first, last]) => code >= first && code <= last);
}

/** Attempts a job may use in all: its first and its retries. */
export function attemptBudget(policy: EffectivePolicy): number {
  return policy.maxRetries + 1;
}

/** Attempts a job may lose to lost workers before it fails for good. */
export function lostWorkerBudget(policy: EffectivePolicy): number {
  return Math.max(attemptBudget(policy), LOST_WORKER_ATTEMPTS);
}

/** The wait before retry number `retry` (0: the first retry) of job `jobId`. */
export function retryDelayMs(policy: EffectivePolicy, jobId: string, retry: number): number {
  const drawn = backoffDelayMs(
    retry + 1,
    { initialMs: policy.minDelayMs, maxMs: policy.maxDelayMs, multiplier: 2 },
    () => unitHash(`${jobId}:${retry}`),
  );
  return Math.min(policy.maxDelayMs, Math.max(policy.minDelayMs, drawn));
}

/** A number in [0, 1) from `text` (FNV-1a, 32 bits): the same text, the same number. */
function unitHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash / 2 ** 32;
}
