/**
 * Retry delays (pure): exponential with full jitter, capped, so that many
 * workers retrying at once spread out instead of hammering a server that is
 * coming back.
 *
 * @module
 */

/** Shape of a backoff. */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
}

/** The worker's default: 100 ms, doubling, at most 5 s. */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 5_000, multiplier: 2 };

/**
 * The delay before retry number `attempt` (0 for the first retry), drawn
 * uniformly from [cap / 2, cap] where cap grows by `multiplier` per attempt.
 * `random` returns a number in [0, 1).
 */
export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const cap = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** Math.max(0, attempt));
  return Math.round(cap / 2 + random() * (cap / 2));
}
