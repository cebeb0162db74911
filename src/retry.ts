/**
 * Retrying, in one place: the delay before each retry (exponential with
 * jitter, capped, so that many workers retrying at once spread out instead of
 * hammering a server that is coming back), which failures are worth another
 * try (the transient Connect codes), and the loop that ties them together,
 * sleeping on an injectable {@link Clock} so tests move time instead of
 * waiting.
 *
 * ```ts
 * const result = await retry(() => clients.jobs.getJob({ jobId }), {
 *   maxAttempts: 4,
 *   signal,
 *   onRetry: (error, delayMs) => logger.warn({ err: error, retryInMs: delayMs }, "retrying"),
 * });
 * ```
 *
 * @module
 */
import type { Code } from "@connectrpc/connect";
import { RpcCode, rpcErrorCode } from "./rpc_error.ts";
import { type Clock, systemClock } from "./clock.ts";

/** Shape of a backoff. */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
}

/** The default (the worker's, the follower's): 100 ms, doubling, at most 5 s. */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 5_000, multiplier: 2 };

/**
 * The delay before retry number `retry` (0 for the first retry), drawn
 * uniformly from [cap / 2, cap] where cap grows by `multiplier` per retry up
 * to `maxMs`, rounded to a millisecond. `random` returns a number in [0, 1).
 *
 * For example, with {@link DEFAULT_BACKOFF}: 50–100 ms, then 100–200 ms,
 * 200–400 ms, ... and from the seventh retry on 2.5–5 s.
 */
export function backoffDelayMs(
  retry: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const cap = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** Math.max(0, retry));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/**
 * The Connect codes of a call that may pass if tried again: the server was
 * unreachable (unavailable, or unknown: what a failed fetch surfaces as),
 * overloaded or restarting (internal, aborted), or too slow this once
 * (deadline_exceeded). Anything else (a lost lease, a rejected request, a
 * missing job) will fail the same way again.
 *
 * Callers that differ keep their difference next to them, built with
 * {@link transientCodes} and documented there: the worker's lease calls add
 * resource_exhausted, the follower leaves out deadline_exceeded, a batch
 * submit retries only unavailable and deadline_exceeded.
 */
export const TRANSIENT_CODES: ReadonlySet<Code> = new Set([
  RpcCode.Unavailable,
  RpcCode.Unknown,
  RpcCode.DeadlineExceeded,
  RpcCode.Internal,
  RpcCode.Aborted,
]);

/** {@link TRANSIENT_CODES} with codes added and taken away, for a caller whose calls differ. */
export function transientCodes(
  change: { readonly adding?: readonly Code[]; readonly removing?: readonly Code[] },
): ReadonlySet<Code> {
  const codes = new Set(TRANSIENT_CODES);
  for (const code of change.adding ?? []) codes.add(code);
  for (const code of change.removing ?? []) codes.delete(code);
  return codes;
}

/**
 * Whether `error` may pass if tried again: its code (a ConnectError's or
 * an RpcError's; unknown for any other error, canceled for an abort) is in
 * `codes`.
 */
export function isTransient(error: unknown, codes: ReadonlySet<Code> = TRANSIENT_CODES): boolean {
  return codes.has(rpcErrorCode(error));
}

/** Options of {@link retry}. */
export interface RetryOptions<T> {
  /** Whether a failure may pass if tried again (default: {@link isTransient}). */
  readonly isRetryable?: (error: unknown) => boolean;
  /**
   * Whether a value the call resolved to asks for another try (some items
   * of a batch were answered unavailable, a stream ended before its job
   * did). The last try's value is returned, whatever it is. Default: none does.
   */
  readonly retryResult?: (value: T) => boolean;
  /** Most tries, the first one included (default: no limit). */
  readonly maxAttempts?: number;
  /** The wait before retry number `retry` (from 0); default {@link backoffDelayMs} with {@link DEFAULT_BACKOFF}. */
  readonly delayMs?: (retry: number) => number;
  /** Where the waits pass (default: the system clock). */
  readonly clock?: Pick<Clock, "sleep">;
  /**
   * Ends the retrying: a failure after it aborted is thrown, and a wait it
   * cuts short ends the loop with the last failure (or the last value).
   */
  readonly signal?: AbortSignal;
  /** Called before each wait that follows a failure, with the failure and the wait. */
  readonly onRetry?: (error: unknown, delayMs: number) => void;
  /**
   * Whether a failure came after the call got somewhere (a session that was
   * established, then ended): the count of tries starts over, this try
   * counting as the first, so the wait after it is the first wait again and
   * `maxAttempts` counts from it. Default: never.
   */
  readonly startsOver?: (error: unknown) => boolean;
}

/**
 * Calls `call` (with the number of tries before it, from 0) until it
 * resolves to a value that asks for no retry, fails in a way that is not
 * retryable, runs out of tries or is stopped by `signal`; waits
 * `delayMs(retry)` on `clock` between tries. Resolves with the value or
 * rejects with the failure of the last try.
 */
export async function retry<T>(
  call: (attempt: number) => Promise<T>,
  options: RetryOptions<T> = {},
): Promise<T> {
  const {
    isRetryable = isTransient,
    maxAttempts = Number.POSITIVE_INFINITY,
    delayMs = (n: number) => backoffDelayMs(n),
    clock = systemClock,
    signal,
  } = options;
  for (let attempt = 0;; attempt++) {
    let outcome: { readonly value: T } | { readonly error: unknown };
    try {
      const value = await call(attempt);
      const last = attempt + 1 >= maxAttempts;
      if (last || signal?.aborted || options.retryResult?.(value) !== true) return value;
      outcome = { value };
    } catch (error) {
      if (options.startsOver?.(error) === true) attempt = 0;
      const last = attempt + 1 >= maxAttempts;
      if (last || signal?.aborted || !isRetryable(error)) throw error;
      outcome = { error };
    }
    const wait = delayMs(attempt);
    if ("error" in outcome) options.onRetry?.(outcome.error, wait);
    await clock.sleep(wait, signal);
    if (signal?.aborted) {
      if ("error" in outcome) throw outcome.error;
      return outcome.value;
    }
  }
}
