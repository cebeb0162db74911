/**
 * Time as a dependency. Stores and the worker take a {@link Clock} so that
 * visibility timeouts, lease expiry and output batching are tested by moving a
 * fake clock instead of sleeping.
 *
 * @module
 */

/** A source of the current time and of delays. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Resolves after `ms` milliseconds of this clock's time, or as soon as
   * `signal` aborts (it never rejects).
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The wall clock, with real timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener("abort", done, { once: true });
    });
  },
};
