/**
 * The worker's side of the output cap (pure): how much of a job's output is
 * still worth sending. The store keeps at most the cap of a job's output
 * (src/store/output_cap.ts); sending more only costs the network and the
 * server. So an attempt sends at most cap + 1 bytes: the store keeps the
 * cap and, from the one byte more, learns that output was cut and stores
 * its marker. A job that prints exactly the cap sends exactly the cap and
 * gets no marker. The count is per attempt (the worker cannot know what
 * earlier attempts stored); the store's count, over all attempts, decides.
 *
 * @module
 */

/** Counts an attempt's output against the cap it was given. */
export class OutputBudget {
  #left: number;

  /** `maxOutputBytes` is the job's ExecutionConfig.max_output_bytes; 0 (or less): no cap. */
  constructor(maxOutputBytes: bigint) {
    this.#left = maxOutputBytes > 0n ? Number(maxOutputBytes) + 1 : Number.POSITIVE_INFINITY;
  }

  /** Whether every byte allowed has been sent. */
  get exhausted(): boolean {
    return this.#left === 0;
  }

  /** The part of `chunk` to send: all of it, its head, or nothing (empty). */
  take(chunk: Uint8Array): Uint8Array {
    if (chunk.byteLength <= this.#left) {
      this.#left -= chunk.byteLength;
      return chunk;
    }
    const head = chunk.subarray(0, this.#left);
    this.#left = 0;
    return head;
  }
}
