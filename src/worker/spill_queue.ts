/**
 * The publisher's queue of undelivered events: in memory up to a limit,
 * then in a file, so a job keeps running through a server outage without
 * the worker's memory growing, and every event still leaves in order.
 *
 * Order is kept by one rule: once anything is in the file, new events go to
 * the file too; the memory part is refilled from the file's front as it
 * empties. Past the file limit the queue is full and the publisher makes the
 * job wait (backpressure).
 *
 * File format: records of a 4-byte big-endian length and an encoded JobEvent.
 * Pushes and refills take turns (one runs at a time), so a refill never
 * meets a half-written record and the file is started over only when every
 * record in it has been read.
 *
 * @module
 */
import { count } from "../telemetry/metrics.ts";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { dirname } from "node:path";
import { type JobEvent, JobEventSchema } from "../../gen/job/v1/job_pb.ts";

/** Limits of a {@link SpillQueue}. */
export interface SpillQueueOptions {
  /** Pending bytes kept in memory before events go to the file. */
  readonly memoryLimitBytes: number;
  /** Bytes the file may hold before the queue is full; 0 disables the file. */
  readonly fileLimitBytes: number;
  /** The file to spill to (created when first needed, removed by close). */
  readonly path: string;
}

interface Entry {
  readonly event: JobEvent;
  readonly bytes: number;
}

/** A FIFO of events that overflows from memory to a file. */
export class SpillQueue {
  readonly #options: SpillQueueOptions;
  #memory: Entry[] = [];
  /** Events in the file not yet read back. */
  #fileEvents = 0;
  #memoryBytes = 0;
  #writer: Deno.FsFile | undefined;
  #reader: Deno.FsFile | undefined;
  #fileBytes = 0; // unread bytes in the file
  #readOffset = 0;
  /** Everything in the file has been read: start it over before the next write. */
  #drained = false;
  /** The file operation running now; the next one waits for it. */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(options: SpillQueueOptions) {
    this.#options = options;
  }

  /** Bytes waiting, in memory and in the file. */
  get pendingBytes(): number {
    return this.#memoryBytes + this.#fileBytes;
  }

  /** Events waiting, in memory and in the file. */
  get length(): number {
    return this.#memory.length + this.#fileEvents;
  }

  /** Whether nothing waits. */
  get isEmpty(): boolean {
    return this.#memory.length === 0 && this.#fileBytes === 0;
  }

  /** Whether the queue takes no more until some is delivered. */
  get isFull(): boolean {
    const { memoryLimitBytes, fileLimitBytes } = this.#options;
    return fileLimitBytes > 0
      ? this.#fileBytes >= fileLimitBytes
      : this.#memoryBytes >= memoryLimitBytes;
  }

  /** Adds an event (about `bytes` large) at the back. */
  push(event: JobEvent, bytes: number): Promise<void> {
    return this.#exclusively(() => this.#push(event, bytes));
  }

  async #push(event: JobEvent, bytes: number): Promise<void> {
    const spilling = this.#fileBytes > 0 ||
      (this.#memoryBytes + bytes > this.#options.memoryLimitBytes &&
        this.#options.fileLimitBytes > 0 &&
        this.#memory.length > 0);
    if (!spilling) {
      this.#memory.push({ event, bytes });
      this.#memoryBytes += bytes;
      return;
    }
    const encoded = toBinary(JobEventSchema, event);
    const record = new Uint8Array(4 + encoded.byteLength);
    new DataView(record.buffer).setUint32(0, encoded.byteLength);
    record.set(encoded, 4);
    if (this.#writer === undefined) {
      await Deno.mkdir(dirname(this.#options.path), { recursive: true, mode: 0o700 });
      await Deno.writeFile(this.#options.path, new Uint8Array(), { mode: 0o600 });
      this.#writer = await Deno.open(this.#options.path, { append: true });
      this.#reader = await Deno.open(this.#options.path, { read: true });
    } else if (this.#drained) {
      await this.#writer.truncate(0);
      this.#readOffset = 0;
    }
    this.#drained = false;
    await writeAll(this.#writer, record);
    this.#fileBytes += record.byteLength;
    this.#fileEvents++;
    count("airunner.channels.overflow.total");
  }

  /** Up to `maxEvents` events and `maxBytes` bytes (at least one event) from the front, not removed. */
  async peek(maxEvents: number, maxBytes: number): Promise<Entry[]> {
    if (this.#memory.length === 0) await this.#exclusively(() => this.#refill());
    const out: Entry[] = [];
    let bytes = 0;
    for (const entry of this.#memory) {
      if (out.length >= maxEvents || (out.length > 0 && bytes + entry.bytes > maxBytes)) break;
      out.push(entry);
      bytes += entry.bytes;
    }
    return out;
  }

  /** Removes the first `count` events (delivered). */
  drop(count: number): void {
    for (const entry of this.#memory.splice(0, count)) this.#memoryBytes -= entry.bytes;
  }

  /** Drops everything waiting (the file stays until close); returns how many events that was. */
  discard(): number {
    const dropped = this.#memory.length + this.#fileEvents;
    this.#memory = [];
    this.#memoryBytes = 0;
    this.#fileBytes = 0;
    this.#fileEvents = 0;
    this.#drained = true;
    return dropped;
  }

  /** Drops everything and removes the file. */
  async close(): Promise<void> {
    await this.#turn.catch(() => {});
    this.discard();
    const [writer, reader] = [this.#writer, this.#reader];
    this.#writer = this.#reader = undefined;
    if (writer !== undefined) {
      writer.close();
      reader?.close();
      await Deno.remove(this.#options.path).catch(() => {});
    }
  }

  #exclusively<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.#turn.then(operation, operation);
    this.#turn = run.catch(() => {});
    return run;
  }

  /** Moves events from the front of the file into memory, up to the memory limit. */
  async #refill(): Promise<void> {
    const file = this.#reader;
    if (file === undefined || this.#fileBytes === 0) return;
    const want = Math.min(this.#fileBytes, Math.max(this.#options.memoryLimitBytes, 1));
    await file.seek(this.#readOffset, Deno.SeekMode.Start);
    const chunk = new Uint8Array(want);
    let filled = 0;
    while (filled < want) {
      const n = await file.read(chunk.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    const view = new DataView(chunk.buffer, 0, filled);
    let offset = 0;
    while (offset + 4 <= filled) {
      const length = view.getUint32(offset);
      if (offset + 4 + length > filled) {
        if (offset > 0) break;
        // One record larger than the memory limit: read it whole.
        const record = new Uint8Array(length);
        await file.seek(this.#readOffset + 4, Deno.SeekMode.Start);
        await readFull(file, record);
        this.#take(record, 4 + length);
        return;
      }
      this.#take(chunk.subarray(offset + 4, offset + 4 + length), 4 + length);
      offset += 4 + length;
    }
  }

  #take(encoded: Uint8Array, recordBytes: number): void {
    const event = fromBinary(JobEventSchema, encoded);
    this.#memory.push({ event, bytes: encoded.byteLength });
    this.#memoryBytes += encoded.byteLength;
    this.#readOffset += recordBytes;
    this.#fileBytes -= recordBytes;
    this.#fileEvents--;
    // Everything spilled is back in memory: the next write starts the file over.
    if (this.#fileBytes === 0) this.#drained = true;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.byteLength;) {
    offset += await file.write(bytes.subarray(offset));
  }
}

async function readFull(file: Deno.FsFile, into: Uint8Array): Promise<void> {
  for (let filled = 0; filled < into.byteLength;) {
    const n = await file.read(into.subarray(filled));
    if (n === null) throw new Error("spill file ended early");
    filled += n;
  }
}
