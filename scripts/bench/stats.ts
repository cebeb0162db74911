/**
 * Summaries of measured samples (pure).
 *
 * @module
 */

/** The p-th percentile (0..100) of `samples`, by nearest rank. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The arithmetic mean of `samples`. */
export function mean(samples: readonly number[]): number {
  return samples.length === 0 ? Number.NaN : samples.reduce((a, b) => a + b, 0) / samples.length;
}

/** Wall-clock Unix time in fractional milliseconds, comparable across processes. */
export function preciseNowMs(): number {
  return performance.timeOrigin + performance.now();
}
