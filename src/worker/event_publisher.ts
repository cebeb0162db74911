/**
 * Ordered, retrying delivery of one attempt's events. Events are sent in the
 * order they were appended, a few per call; a call that fails in a way that
 * may pass is retried with backoff until it succeeds (the store skips what a
 * retry resends). Memory stays bounded: past `maxPendingBytes` events go to
 * a spill file (when one is given), and past its limit `append` waits, which
 * slows the reader of the process's output in turn.
 *
 * A call that fails for good (the lease is lost, the server refuses an
 * event) stops delivery: later appends are dropped, `failure` says why, and
 * `drain` throws it.
 *
 * @module
 */
import { count } from "../telemetry/metrics.ts";
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { retry } from "../retry.ts";
import { SpillQueue } from "./spill_queue.ts";

/** Options of {@link EventPublisher}. */
export interface EventPublisherOptions {
  /** Sends events, in order, in one call. */
  readonly publish: (events: readonly JobEvent[]) => Promise<void>;
  /** Whether a failed call is worth retrying. */
  readonly isRetryable: (error: unknown) => boolean;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called once when delivery stops for good. */
  readonly onFailure?: (error: unknown) => void;
  /** Pending bytes kept in memory (default 16 MiB); past them, events spill or `append` waits. */
  readonly maxPendingBytes?: number;
  /** Where to spill events past the memory limit, and how much (none by default). */
  readonly spill?: { readonly path: string; readonly limitBytes: number };
  /** Most events per call (default 64). */
  readonly maxEventsPerCall?: number;
  /** Most bytes per call (default 1 MiB; larger calls move output faster but let the worker grow past 200 MB on a 200 MB job). */
  readonly maxBytesPerCall?: number;
}

/** Delivers one attempt's events in order. */
export class EventPublisher {
  readonly #options: EventPublisherOptions;
  readonly #stopped = new AbortController();
  readonly #queue: SpillQueue;
  /** True while a sending round runs; `#round` is that round. */
  #sending = false;
  #round: Promise<void> = Promise.resolve();
  #failure: { readonly error: unknown } | undefined;
  #roomWaiters: (() => void)[] = [];
  /** Set by takeLast: a round leaves what one call would carry last. */
  #holdingLast = false;

  constructor(options: EventPublisherOptions) {
    this.#options = options;
    this.#queue = new SpillQueue({
      memoryLimitBytes: options.maxPendingBytes ?? 16 * 1024 * 1024,
      fileLimitBytes: options.spill?.limitBytes ?? 0,
      path: options.spill?.path ?? "",
    });
  }

  /** Why delivery stopped for good, if it did. */
  get failure(): { readonly error: unknown } | undefined {
    return this.#failure;
  }

  /** Bytes appended and not yet delivered. */
  get pendingBytes(): number {
    return this.#queue.pendingBytes;
  }

  /**
   * Queues `event` (`bytes` large) for delivery, waiting while too much is
   * pending. Never throws: once delivery has stopped, the event is dropped.
   */
  async append(event: JobEvent, bytes: number): Promise<void> {
    while (this.#queue.isFull && this.#failure === undefined) {
      await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    }
    if (this.#failure !== undefined) {
      count("airunner.events.dropped.total");
      return;
    }
    await this.#queue.push(event, bytes);
    this.#startRound();
  }

  /**
   * Resolves once everything appended so far is delivered; throws why
   * delivery stopped, if it did.
   */
  async drain(): Promise<void> {
    if (this.#holdingLast) {
      this.#holdingLast = false;
      this.#startRound();
    }
    while (this.#sending) await this.#round;
    if (this.#failure !== undefined) throw this.#failure.error;
  }

  /**
   * From now on a round leaves what the last call would carry, for
   * {@link takeLast}: set it before the attempt's last events are appended,
   * or a round sends them on their own.
   */
  holdLast(): void {
    this.#holdingLast = true;
  }

  /**
   * Delivers everything appended so far except what the last call would
   * carry, and hands that to the caller, who sends it with the attempt's
   * result: one round trip less at the end of every job. Nothing may be
   * appended after. Throws why delivery stopped, if it did.
   */
  async takeLast(): Promise<JobEvent[]> {
    this.holdLast();
    for (;;) {
      while (this.#sending) await this.#round;
      if (this.#failure !== undefined) throw this.#failure.error;
      if (this.#queue.isEmpty) return [];
      const batch = await this.#queue.peek(this.#maxEventsPerCall, this.#maxBytesPerCall);
      if (batch.length === this.#queue.length) {
        this.#queue.drop(batch.length);
        return batch.map((p) => p.event);
      }
      // More than one call's worth (an append raced the last round): send on.
      this.#startRound();
    }
  }

  /** Stops delivery for good (pending events are dropped, the spill file removed) with `reason`. */
  async stop(reason: unknown): Promise<void> {
    this.#fail(reason);
    this.#stopped.abort();
    while (this.#sending) await this.#round;
    await this.#queue.close();
  }

  /** Starts a sending round unless one runs. */
  #startRound(): void {
    if (this.#sending || this.#queue.isEmpty) return;
    this.#sending = true;
    this.#round = this.#sendAll();
  }

  get #maxEventsPerCall(): number {
    return this.#options.maxEventsPerCall ?? 64;
  }

  get #maxBytesPerCall(): number {
    return this.#options.maxBytesPerCall ?? 1024 * 1024;
  }

  async #sendAll(): Promise<void> {
    const { clock, logger, isRetryable } = this.#options;
    try {
      while (!this.#queue.isEmpty && this.#failure === undefined) {
        const batch = await this.#queue.peek(this.#maxEventsPerCall, this.#maxBytesPerCall);
        if (this.#holdingLast && batch.length === this.#queue.length) {
          // What is held fits one call; whoever waits for room may go on.
          this.#wakeRoomWaiters();
          return;
        }
        const events = batch.map((p) => p.event);
        try {
          await retry(() => this.#options.publish(events), {
            isRetryable,
            clock,
            signal: this.#stopped.signal,
            onRetry: (error, delayMs) =>
              logger.warn({ err: error, retryInMs: delayMs }, "publishing events failed"),
          });
        } catch (error) {
          if (!this.#stopped.signal.aborted) this.#fail(error);
          return;
        }
        this.#queue.drop(batch.length);
        if (!this.#queue.isFull) this.#wakeRoomWaiters();
      }
    } finally {
      // Cleared in the same step that found nothing left to send, so an
      // append that comes after it always starts a new round.
      this.#sending = false;
    }
  }

  #fail(error: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = { error };
    count("airunner.events.dropped.total", this.#queue.discard());
    this.#wakeRoomWaiters();
    this.#options.onFailure?.(error);
  }

  #wakeRoomWaiters(): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const wake of waiters) wake();
  }
}
