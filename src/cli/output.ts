/**
 * Writing a job's output to the local terminal: stdout chunks to stdout,
 * stderr chunks to stderr, byte for byte and in order.
 *
 * @module
 */
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import { StreamType } from "../../gen/job/v1/job_lite.ts";
import { outputChunks } from "./job_format.ts";

/** Writes the output an event carries (all of it to stderr when `allToStderr`). */
export async function writeOutput(event: JobEvent, allToStderr = false): Promise<void> {
  for (const { stream, bytes } of outputChunks(event)) {
    await writeAll(allToStderr || stream === StreamType.STDERR ? Deno.stderr : Deno.stdout, bytes);
  }
}

/** Writes all of `bytes` to `out`. */
export async function writeAll(out: { write(p: Uint8Array): Promise<number> }, bytes: Uint8Array) {
  for (let offset = 0; offset < bytes.byteLength;) {
    offset += await out.write(bytes.subarray(offset));
  }
}
