/**
 * The worker's main loop, written against plain functions: claim work while
 * there is room for it, run each claimed item without waiting for it, and
 * back off (with jitter) after a failed claim instead of spinning.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { retry } from "../retry.ts";

/** Options of {@link runClaimLoop}. */
export interface ClaimLoopOptions<T> {
  /** Waits for and claims up to `max` items (none when `signal` aborts). */
  readonly claim: (max: number, signal: AbortSignal) => Promise<T[]>;
  /** Runs one claimed item to its end. */
  readonly handle: (item: T) => Promise<void>;
  /** Most items handled at once. */
  readonly concurrency: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Stops claiming; the loop then waits for the items it is running. */
  readonly signal: AbortSignal;
}

/** Claims and handles items until `signal` aborts and every running item is done. */
export async function runClaimLoop<T>(options: ClaimLoopOptions<T>): Promise<void> {
  const { clock, logger, signal, concurrency } = options;
  const running = new Set<Promise<void>>();
  const stopped = aborted(signal);
  while (!signal.aborted) {
    if (running.size >= concurrency) {
      await Promise.race([...running, stopped]);
      continue;
    }
    let items: T[];
    try {
      // Every failed claim is retried: the loop must not die of one, and a
      // retry asks for what room there is then (items may have finished).
      items = await retry(() => options.claim(concurrency - running.size, signal), {
        isRetryable: () => true,
        clock,
        signal,
        onRetry: (error, delayMs) =>
          logger.warn({ err: error, retryInMs: delayMs }, "claiming work failed"),
      });
    } catch {
      break; // only once `signal` aborted
    }
    for (const item of items) {
      const task: Promise<void> = options.handle(item)
        .catch((error) => logger.error({ err: error }, "handling claimed work failed"))
        .finally(() => running.delete(task));
      running.add(task);
    }
  }
  await Promise.all(running);
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}
