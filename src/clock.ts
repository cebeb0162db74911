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

/** The longest delay setTimeout takes: 2^31 - 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The wall clock, with real timers; a sleep past {@link MAX_TIMER_MS} ends there. */
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
      // A timer holds a signed 32-bit delay: a longer one would fire at once
      // (and warn), so the sleep ends at the limit, about 24.8 days, early.
      // Every caller checks the time again when it wakes.
      const timer = setTimeout(done, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
      signal?.addEventListener("abort", done, { once: true });
    });
  },
};
