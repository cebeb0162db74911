/**
 * Keeping a lease while its job runs: extend it at a fraction of the
 * visibility timeout (and at least every few seconds, which is how a
 * worker learns that its job was cancelled), retry extensions that fail in
 * passing, and report a lease that is lost for good so the job can be
 * stopped. Each extension asks for the whole visibility timeout from now, so
 * a job may run for longer than any one lease (SQS caps one at 12 hours).
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { backoffDelayMs, retry } from "../retry.ts";

/** Options of {@link keepLease}. */
export interface LeaseKeeperOptions {
  /** Extends the lease by the visibility timeout; says whether the job was cancelled. */
  readonly extend: () => Promise<{ readonly cancelled: boolean }>;
  readonly isRetryable: (error: unknown) => boolean;
  readonly visibilityTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Ends the keeping (the job finished). */
  readonly signal: AbortSignal;
  /** Called once when the lease is lost for good. */
  readonly onLost: (error: unknown) => void;
  /** Called once when an extension says the job was cancelled. */
  readonly onCancelled?: () => void;
}

/** Longest between extensions, so a cancel reaches the worker within this. */
export const MAX_EXTENSION_INTERVAL_MS = 3_000;

/**
 * Extends this often: a third of the visibility timeout leaves two tries
 * before expiry; at most every {@link MAX_EXTENSION_INTERVAL_MS}.
 */
export function extensionIntervalMs(visibilityTimeoutMs: number): number {
  return Math.min(MAX_EXTENSION_INTERVAL_MS, Math.max(250, Math.floor(visibilityTimeoutMs / 3)));
}

/** Extends the lease until `signal` aborts or the lease is lost. */
export async function keepLease(options: LeaseKeeperOptions): Promise<void> {
  const { clock, signal, logger } = options;
  const interval = extensionIntervalMs(options.visibilityTimeoutMs);
  let told = false;
  while (!signal.aborted) {
    await clock.sleep(interval, signal);
    if (signal.aborted) return;
    try {
      await retry(async () => {
        const { cancelled } = await options.extend();
        if (cancelled && !told) {
          told = true;
          options.onCancelled?.();
        }
      }, {
        isRetryable: options.isRetryable,
        // Never wait longer than the interval: the lease runs out meanwhile.
        delayMs: (n) => Math.min(interval, backoffDelayMs(n)),
        clock,
        signal,
        onRetry: (error, delayMs) =>
          logger.warn({ err: error, retryInMs: delayMs }, "extending the lease failed"),
      });
    } catch (error) {
      if (signal.aborted) return;
      options.onLost(error);
      return;
    }
  }
}
