/**
 * The floor-pickup agent role (scripts/bench/agent.ts): pickup samples
 * against a floor server (scripts/bench/floor_server.ts), taken as the
 * session-pickup role takes them against airunner.
 *
 * @module
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  EnqueueJobRequestSchema,
  EnqueueJobResponseSchema,
  WorkerSessionResponseSchema,
} from "../../gen/job/v1/job_pb.ts";
import { concatBytes } from "../../src/bytes.ts";
import { FLOOR_QUEUE, type FloorMode } from "./floor_server.ts";

/**
 * Reads Connect envelopes' payloads off a byte stream. Not Connect's
 * createEnvelopeReadableStream: the floor measures what a job runner costs
 * without Connect's stream plumbing, so it reads the bytes directly.
 */
class EnvelopeReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buffered: Uint8Array = new Uint8Array(0);

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.getReader();
  }

  async next(): Promise<Uint8Array> {
    for (;;) {
      if (this.#buffered.byteLength >= 5) {
        const length = new DataView(
          this.#buffered.buffer,
          this.#buffered.byteOffset,
          this.#buffered.byteLength,
        ).getUint32(1);
        if (this.#buffered[0] !== 0) {
          throw new Error(`the floor server sent an envelope with flags ${this.#buffered[0]}`);
        }
        if (this.#buffered.byteLength >= 5 + length) {
          const payload = this.#buffered.subarray(5, 5 + length);
          this.#buffered = this.#buffered.subarray(5 + length);
          return payload;
        }
      }
      const { done, value } = await this.#reader.read();
      if (done) throw new Error("the floor server ended the stream");
      this.#buffered = this.#buffered.byteLength === 0
        ? value
        : concatBytes([this.#buffered, value]);
    }
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

/**
 * The floor-pickup agent role: samples in ms against the floor server at
 * `serverUrl`, taken as the session-pickup role takes them.
 */
export async function runFloorPickup(
  options: { serverUrl: string; mode: FloorMode; samples: number; warmup: number },
): Promise<{ samples: number[] }> {
  const { serverUrl, mode } = options;
  const http2 = Deno.createHttpClient({ http1: false, http2: true });
  const stream = await fetch(`${serverUrl}/session`, {
    method: "POST",
    body: new Uint8Array(0),
    client: http2,
  });
  const pushes = new EnvelopeReader(stream.body!);
  const request = toBinary(
    EnqueueJobRequestSchema,
    create(EnqueueJobRequestSchema, { queue: FLOOR_QUEUE, jobParams: { command: "true" } }),
  );
  const samples: number[] = [];
  try {
    for (let i = 0; i < options.warmup + options.samples; i++) {
      await new Promise((resolve) => setTimeout(resolve, i === 0 ? 200 : 2));
      const sentAt = performance.now();
      const pushed = pushes.next().then((payload) => ({
        jobIds: mode === "bare"
          ? []
          : fromBinary(WorkerSessionResponseSchema, payload).jobs.map((j) => j.job?.jobId),
        at: performance.now(),
      }));
      const answered = fetch(`${serverUrl}/enqueue`, { method: "POST", body: request })
        .then(async (res) => {
          if (!res.ok) throw new Error(`the floor server answered ${res.status}`);
          return mode === "bare"
            ? ""
            : fromBinary(EnqueueJobResponseSchema, await res.bytes()).jobId;
        });
      const [{ jobIds, at }, jobId] = await Promise.all([pushed, answered]);
      if (mode === "minimal" && (jobIds.length !== 1 || jobIds[0] !== jobId)) {
        throw new Error(`the push carried ${jobIds.join(", ")}, not the job enqueued (${jobId})`);
      }
      if (i >= options.warmup) samples.push(at - sentAt);
    }
  } finally {
    // A stream that already failed would reject here and hide the first error.
    await pushes.cancel().catch(() => {});
    http2.close();
  }
  return { samples };
}
