/**
 * Keeping a lease while its job runs: extend it at a fraction of the
 * visibility timeout, retry extensions that fail in passing, and report a
 * lease that is lost for good so the job can be stopped.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { backoffDelayMs } from "./backoff.ts";

/** Options of {@link keepLease}. */
export interface LeaseKeeperOptions {
  /** Extends the lease by the visibility timeout. */
  readonly extend: () => Promise<void>;
  readonly isRetryable: (error: unknown) => boolean;
  readonly visibilityTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Ends the keeping (the job finished). */
  readonly signal: AbortSignal;
  /** Called once when the lease is lost for good. */
  readonly onLost: (error: unknown) => void;
}

/** Extends this often: a third of the visibility timeout leaves two tries before expiry. */
export function extensionIntervalMs(visibilityTimeoutMs: number): number {
  return Math.max(250, Math.floor(visibilityTimeoutMs / 3));
}

/** Extends the lease until `signal` aborts or the lease is lost. */
export async function keepLease(options: LeaseKeeperOptions): Promise<void> {
  const { clock, signal, logger } = options;
  const interval = extensionIntervalMs(options.visibilityTimeoutMs);
  let failures = 0;
  let wait = interval;
  while (!signal.aborted) {
    await clock.sleep(wait, signal);
    if (signal.aborted) return;
    try {
      await options.extend();
      failures = 0;
      wait = interval;
    } catch (error) {
      if (signal.aborted) return;
      if (!options.isRetryable(error)) {
        options.onLost(error);
        return;
      }
      wait = Math.min(interval, backoffDelayMs(failures++));
      logger.warn({ err: error, retryInMs: wait }, "extending the lease failed");
    }
  }
}
