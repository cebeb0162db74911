/**
 * Ordered, retrying delivery of one attempt's events. Events are sent in the
 * order they were appended, a few per call; a call that fails in a way that
 * may pass is retried with backoff until it succeeds (the store skips what a
 * retry resends), and memory stays bounded: `append` waits while too much is
 * pending, which slows the reader of the process's output in turn.
 *
 * @module
 */
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { backoffDelayMs } from "./backoff.ts";

/** Options of {@link EventPublisher}. */
export interface EventPublisherOptions {
  /** Sends events, in order, in one call. */
  readonly publish: (events: readonly JobEvent[]) => Promise<void>;
  /** Whether a failed call is worth retrying. */
  readonly isRetryable: (error: unknown) => boolean;
  readonly clock: Clock;
  readonly logger: Logger;
  /** `append` waits while more than this many bytes are pending (default 16 MiB). */
  readonly maxPendingBytes?: number;
  /** Most events per call (default 64). */
  readonly maxEventsPerCall?: number;
  /** Most bytes per call (default 4 MiB). */
  readonly maxBytesPerCall?: number;
}

interface Pending {
  readonly event: JobEvent;
  readonly bytes: number;
}

/** Delivers one attempt's events in order. */
export class EventPublisher {
  readonly #options: EventPublisherOptions;
  readonly #maxPendingBytes: number;
  readonly #stop = new AbortController();
  #pending: Pending[] = [];
  #pendingBytes = 0;
  #sending: Promise<void> | undefined;
  #failure: unknown;
  #spaceWaiters: (() => void)[] = [];

  constructor(options: EventPublisherOptions) {
    this.#options = options;
    this.#maxPendingBytes = options.maxPendingBytes ?? 16 * 1024 * 1024;
  }

  /** The error that stopped delivery for good, if any. */
  get failure(): unknown {
    return this.#failure;
  }

  /**
   * Queues `event` (about `bytes` large) for delivery; waits while too much is
   * pending. Throws the delivery failure once delivery has stopped for good.
   */
  async append(event: JobEvent, bytes: number): Promise<void> {
    while (this.#pendingBytes > this.#maxPendingBytes && this.#failure === undefined) {
      await new Promise<void>((resolve) => this.#spaceWaiters.push(resolve));
    }
    if (this.#failure !== undefined) throw this.#failure;
    this.#pending.push({ event, bytes });
    this.#pendingBytes += bytes;
    this.#sending ??= this.#sendAll().finally(() => this.#sending = undefined);
  }

  /** Resolves once everything appended so far is delivered; throws the delivery failure. */
  async drain(): Promise<void> {
    while (this.#sending !== undefined) await this.#sending;
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Stops retrying; pending events are dropped and `drain` ends. */
  stop(reason: unknown): void {
    this.#failure ??= reason;
    this.#stop.abort();
    this.#wakeSpaceWaiters();
  }

  async #sendAll(): Promise<void> {
    const maxEvents = this.#options.maxEventsPerCall ?? 64;
    const maxBytes = this.#options.maxBytesPerCall ?? 4 * 1024 * 1024;
    let retries = 0;
    while (this.#pending.length > 0 && this.#failure === undefined) {
      let count = 0;
      let bytes = 0;
      while (count < this.#pending.length && count < maxEvents) {
        const next = this.#pending[count]!.bytes;
        if (count > 0 && bytes + next > maxBytes) break;
        bytes += next;
        count++;
      }
      try {
        await this.#options.publish(this.#pending.slice(0, count).map((p) => p.event));
      } catch (error) {
        if (this.#stop.signal.aborted) return;
        if (!this.#options.isRetryable(error)) {
          this.#failure = error;
          this.#wakeSpaceWaiters();
          return;
        }
        const delay = backoffDelayMs(retries++);
        this.#options.logger.warn({ err: error, retryInMs: delay }, "publishing events failed");
        await this.#options.clock.sleep(delay, this.#stop.signal);
        continue;
      }
      retries = 0;
      this.#pending = this.#pending.slice(count);
      this.#pendingBytes -= bytes;
      if (this.#pendingBytes <= this.#maxPendingBytes) this.#wakeSpaceWaiters();
    }
  }

  #wakeSpaceWaiters(): void {
    const waiters = this.#spaceWaiters;
    this.#spaceWaiters = [];
    for (const wake of waiters) wake();
  }
}
