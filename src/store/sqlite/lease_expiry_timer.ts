/**
 * The SQLite store's one timer at the earliest lease expiry: when it fires,
 * leases that ran out are ended as the lifecycle decides, which wakes
 * waiting dequeues without polling.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { StoreFullError } from "../errors.ts";

/** How soon lease expiries are reclaimed again after the disk refused it. */
const RECLAIM_RETRY_MS = 1_000;

/** What the timer works with. */
export interface LeaseExpiryTimerOptions {
  readonly clock: Clock;
  /** The earliest lease expiry stored (Unix ms), or null when no job is running. */
  readonly earliestExpiry: () => number | null;
  /** Ends every lease that has run out by `now`. */
  readonly reclaim: (now: number) => void;
  /** Told of a reclaim's error other than a full disk (which is retried soon). */
  readonly onError: (error: unknown) => void;
}

/** One timer, armed at or before the earliest lease expiry. */
export class LeaseExpiryTimer {
  readonly #options: LeaseExpiryTimerOptions;
  #armed: { readonly at: number; readonly stop: AbortController } | undefined;
  #closed = false;

  constructor(options: LeaseExpiryTimerOptions) {
    this.#options = options;
  }

  /**
   * Whether a lease may have run out by `now`: the armed timer is at or
   * before the earliest expiry, so before it none can have.
   */
  mayHaveExpired(now: number): boolean {
    return this.#armed === undefined || now >= this.#armed.at;
  }

  /**
   * Arms the timer at the earliest lease expiry; `newLeaseExpiresAt`, the
   * end of a lease just granted or moved, spares the query when it ends no
   * earlier than the armed timer.
   */
  arm(newLeaseExpiresAt?: number): void {
    if (this.#closed) return;
    const armedAt = this.#armed?.at;
    if (armedAt !== undefined && newLeaseExpiresAt !== undefined && armedAt <= newLeaseExpiresAt) {
      return;
    }
    const next = this.#options.earliestExpiry();
    const armed = this.#armed;
    if (armed !== undefined && next !== null && armed.at <= next) return;
    armed?.stop.abort();
    this.#armed = undefined;
    if (next === null) return;
    this.#armAt(next);
  }

  /** Stops the timer for good. */
  close(): void {
    this.#closed = true;
    this.#armed?.stop.abort();
  }

  #armAt(at: number): void {
    const { clock } = this.#options;
    const timer = { at, stop: new AbortController() };
    this.#armed = timer;
    void clock.sleep(at - clock.now(), timer.stop.signal).then(() => {
      if (timer.stop.signal.aborted || this.#closed) return;
      this.#armed = undefined;
      try {
        this.#options.reclaim(clock.now());
        this.arm();
      } catch (error) {
        // A disk that refuses the change: try again soon, so waiting
        // dequeues still get the work once it takes writes again.
        if (!(error instanceof StoreFullError)) this.#options.onError(error);
        this.#armAt(clock.now() + RECLAIM_RETRY_MS);
      }
    });
  }
}
