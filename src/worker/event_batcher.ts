/**
 * Output batching (pure: time is an argument). Chunks of a job's output are
 * gathered into batches that are flushed when they hold `maxItems` items or
 * would pass `maxBytes` (an item counts its length + 16), `flushIntervalMs`
 * after their first item, or once output has paused for `idleFlushMs`. A
 * chunk larger than `maxChunkBytes` is split, never dropped.
 *
 * @module
 */
import type { StreamType } from "../../gen/job/v1/job_pb.ts";

/** Per-item overhead counted against `maxBytes`. */
export const ITEM_OVERHEAD_BYTES = 16;
/** Largest chunk kept whole; larger output is split into pieces of this size. */
export const MAX_CHUNK_BYTES = 200 * 1024;

/** When batches are flushed. */
export interface BatchLimits {
  readonly maxItems: number;
  readonly maxBytes: number;
  readonly flushIntervalMs: number;
  /** Flush once no output has arrived for this long (0: only on the interval). */
  readonly idleFlushMs: number;
  readonly maxChunkBytes: number;
}

/** One chunk of output in a batch. */
export interface BatchItem {
  readonly output: Uint8Array;
  readonly streamType: StreamType;
  /** Unix ms at which the chunk was read. */
  readonly timeMs: number;
}

/** A batch ready to publish. */
export interface OutputBatch {
  readonly items: readonly BatchItem[];
  /** Sum of item lengths + overheads. */
  readonly bytes: number;
}

/** Gathers output chunks into batches. */
export class EventBatcher {
  readonly #limits: BatchLimits;
  #items: BatchItem[] = [];
  #bytes = 0;
  #firstMs = 0;
  #lastMs = 0;

  constructor(limits: BatchLimits) {
    if (limits.maxItems < 1 || limits.maxBytes <= ITEM_OVERHEAD_BYTES || limits.maxChunkBytes < 1) {
      throw new RangeError("batch limits must allow at least one non-empty item");
    }
    // A chunk must fit in a batch on its own.
    const maxChunkBytes = Math.min(limits.maxChunkBytes, limits.maxBytes - ITEM_OVERHEAD_BYTES);
    this.#limits = { ...limits, maxChunkBytes };
  }

  /** Whether any output is waiting. */
  get isEmpty(): boolean {
    return this.#items.length === 0;
  }

  /** Adds a chunk read at `nowMs`; returns the batches it filled, oldest first. */
  add(streamType: StreamType, chunk: Uint8Array, nowMs: number): OutputBatch[] {
    const full: OutputBatch[] = [];
    const { maxChunkBytes, maxItems, maxBytes } = this.#limits;
    for (let offset = 0; offset < chunk.byteLength; offset += maxChunkBytes) {
      const piece = chunk.subarray(offset, Math.min(chunk.byteLength, offset + maxChunkBytes));
      const size = piece.byteLength + ITEM_OVERHEAD_BYTES;
      if (this.#items.length > 0 && this.#bytes + size > maxBytes) full.push(this.#take());
      if (this.#items.length === 0) this.#firstMs = nowMs;
      this.#items.push({ output: piece, streamType, timeMs: nowMs });
      this.#bytes += size;
      this.#lastMs = nowMs;
      if (this.#items.length >= maxItems || this.#bytes >= maxBytes) full.push(this.#take());
    }
    return full;
  }

  /** When the waiting output must be flushed, or undefined when there is none. */
  nextFlushAt(): number | undefined {
    if (this.#items.length === 0) return undefined;
    const { flushIntervalMs, idleFlushMs } = this.#limits;
    const byInterval = this.#firstMs + flushIntervalMs;
    return idleFlushMs > 0 ? Math.min(byInterval, this.#lastMs + idleFlushMs) : byInterval;
  }

  /** Takes the waiting output if its flush time has come by `nowMs`. */
  takeDue(nowMs: number): OutputBatch | undefined {
    const at = this.nextFlushAt();
    return at !== undefined && at <= nowMs ? this.#take() : undefined;
  }

  /** Takes whatever output is waiting. */
  takeAll(): OutputBatch | undefined {
    return this.#items.length === 0 ? undefined : this.#take();
  }

  #take(): OutputBatch {
    const batch = { items: this.#items, bytes: this.#bytes };
    this.#items = [];
    this.#bytes = 0;
    return batch;
  }
}
