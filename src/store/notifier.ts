/**
 * In-process wake-ups keyed by name (a queue, a job id). The embedded stores
 * use it so that a waiting dequeue or live tail is woken by the write itself
 * rather than by a timer.
 *
 * @module
 */
import type { Clock } from "../clock.ts";

/** Options of {@link Notifier.wait}. */
export interface WaitOptions {
  /** Stop waiting when this aborts. */
  readonly signal?: AbortSignal;
  /** Stop waiting after this many milliseconds of `clock` time. */
  readonly timeoutMs?: number;
}

/** Wakes waiters registered under a key, oldest first. */
export class Notifier<K> {
  readonly #clock: Clock;
  readonly #waiters = new Map<K, Set<() => void>>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /**
   * Registers a waiter under `key` at once (so a notify that happens before
   * the returned promise is awaited is not missed) and resolves when it is
   * notified, when `signal` aborts, or when `timeoutMs` passes. Never rejects.
   */
  wait(key: K, options: WaitOptions = {}): Promise<void> {
    const { signal, timeoutMs } = options;
    if (signal?.aborted || timeoutMs !== undefined && timeoutMs <= 0) return Promise.resolve();
    let set = this.#waiters.get(key);
    if (set === undefined) {
      set = new Set();
      this.#waiters.set(key, set);
    }
    const waiters = set;
    const timer = timeoutMs === undefined ? undefined : new AbortController();
    return new Promise<void>((resolve) => {
      const wake = () => {
        waiters.delete(wake);
        if (waiters.size === 0 && this.#waiters.get(key) === waiters) this.#waiters.delete(key);
        signal?.removeEventListener("abort", wake);
        timer?.abort();
        resolve();
      };
      waiters.add(wake);
      signal?.addEventListener("abort", wake, { once: true });
      if (timer !== undefined && timeoutMs !== undefined) {
        void this.#clock.sleep(timeoutMs, timer.signal).then(wake);
      }
    });
  }

  /** Wakes up to `count` waiters of `key`, oldest first. */
  notify(key: K, count = Number.POSITIVE_INFINITY): void {
    const set = this.#waiters.get(key);
    if (set === undefined) return;
    for (const wake of [...set].slice(0, count)) wake();
  }

  /** Wakes every waiter of every key. */
  notifyAll(): void {
    for (const set of [...this.#waiters.values()]) {
      for (const wake of [...set]) wake();
    }
  }

  /** Number of waiters registered under `key`. */
  waiting(key: K): number {
    return this.#waiters.get(key)?.size ?? 0;
  }
}
