/**
 * The event log of one attempt, as the worker writes it: output is gathered
 * into batches, lifecycle events are written after all output read before
 * them (the wire contract's "output is flushed before any lifecycle event"),
 * and every event is numbered at the moment it is queued for publishing, so
 * numbers follow publishing order exactly. Output past the attempt's
 * {@link OutputBudget} is not sent at all (the process is still read, so it
 * runs on).
 *
 * @module
 */
import type { JobEvent, StreamType } from "../../gen/job/v1/job_pb.ts";
import { encodedSizeBound } from "../protocol/event_sequencing.ts";
import type { EventBatcher, OutputBatch } from "./event_batcher.ts";
import type { EventPublisher } from "./event_publisher.ts";
import { OutputBudget } from "./output_budget.ts";
import { EventSequencer, outputBatchEvent } from "./job_events.ts";

/** Builds a lifecycle event with the next number. */
export type LifecycleEventBuilder = (sequencer: EventSequencer) => JobEvent;

/** Orders, numbers and hands one attempt's events to its publisher. */
export class AttemptEvents {
  readonly #batcher: EventBatcher;
  readonly #publisher: EventPublisher;
  readonly #playbackIntervalMillis: number;
  readonly #budget: OutputBudget;
  readonly #sequencer = new EventSequencer();
  // Every event goes through this chain, so events leave in the order they
  // were produced and each is numbered just before it is queued.
  #chain: Promise<void> = Promise.resolve();

  constructor(
    batcher: EventBatcher,
    publisher: EventPublisher,
    playbackIntervalMillis: number,
    budget: OutputBudget = new OutputBudget(0n),
  ) {
    this.#batcher = batcher;
    this.#publisher = publisher;
    this.#playbackIntervalMillis = playbackIntervalMillis;
    this.#budget = budget;
  }

  /** Adds output read at `nowMs`; resolves once any batch it filled is queued (backpressure). */
  addOutput(stream: StreamType, chunk: Uint8Array, nowMs: number): Promise<void> {
    const sent = this.#budget.take(chunk);
    if (sent.byteLength === 0) return this.#chain;
    for (const batch of this.#batcher.add(stream, sent, nowMs)) this.#queueBatch(batch);
    return this.#chain;
  }

  /** When waiting output must be flushed, or undefined when none waits. */
  nextFlushAt(): number | undefined {
    return this.#batcher.nextFlushAt();
  }

  /** Queues the waiting output if its flush time has come by `nowMs`. */
  flushDue(nowMs: number): Promise<void> {
    const due = this.#batcher.takeDue(nowMs);
    if (due !== undefined) this.#queueBatch(due);
    return this.#chain;
  }

  /** Queues all waiting output, then the lifecycle event `build` makes. */
  lifecycle(build: LifecycleEventBuilder): Promise<void> {
    const rest = this.#batcher.takeAll();
    if (rest !== undefined) this.#queueBatch(rest);
    return this.#queue(() => build(this.#sequencer));
  }

  /** Resolves once everything produced so far has been queued for publishing. */
  settled(): Promise<void> {
    return this.#chain;
  }

  #queueBatch(batch: OutputBatch): void {
    void this.#queue(() => outputBatchEvent(this.#sequencer, batch, this.#playbackIntervalMillis));
  }

  #queue(build: () => JobEvent): Promise<void> {
    this.#chain = this.#chain.then(() => {
      const event = build();
      return this.#publisher.append(event, encodedSizeBound(event));
    });
    return this.#chain;
  }
}
