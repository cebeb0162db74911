/**
 * A clock that moves only when a test says so.
 *
 * @module
 */
import type { Clock } from "../../src/clock.ts";

interface Sleeper {
  readonly wakeAt: number;
  readonly wake: () => void;
}

/** A {@link Clock} whose time advances only through {@link FakeClock.advance}. */
export class FakeClock implements Clock {
  #now: number;
  #sleepers: Sleeper[] = [];

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper: Sleeper = {
        wakeAt: this.#now + Math.max(0, ms),
        wake: () => {
          this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
          signal?.removeEventListener("abort", sleeper.wake);
          resolve();
        },
      };
      this.#sleepers.push(sleeper);
      signal?.addEventListener("abort", sleeper.wake, { once: true });
    });
  }

  /** Number of pending sleeps (for tests that wait until something sleeps). */
  get pendingSleeps(): number {
    return this.#sleepers.length;
  }

  /** Moves time forward, wakes every sleep that is due, and lets their continuations run. */
  async advance(ms: number): Promise<void> {
    this.#now += ms;
    for (const sleeper of [...this.#sleepers].sort((a, b) => a.wakeAt - b.wakeAt)) {
      if (sleeper.wakeAt <= this.#now) sleeper.wake();
    }
    await settle();
  }
}

/** Lets pending promise continuations and zero-delay timers run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}
