/**
 * Writing a job's output to the local terminal: stdout chunks to stdout,
 * stderr chunks to stderr, byte for byte and in order; between two
 * attempts of a retried job, one line on stderr saying why and when the
 * next begins (`airunner: attempt 2 of 4 after exit 1, in 8 s`).
 *
 * @module
 */
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import { StreamType } from "../../gen/job/v1/job_lite.ts";
import { attemptSeparator } from "./attempt_format.ts";
import { outputChunks } from "./job_format.ts";

const encoder = new TextEncoder();

/**
 * Writes the output an event carries (all of it to stderr when
 * `allToStderr`), or the separator line of an ATTEMPT_END event (always to
 * stderr, so that stdout holds the job's own output alone).
 */
export async function writeOutput(event: JobEvent, allToStderr = false): Promise<void> {
  const separator = attemptSeparator(event);
  if (separator !== undefined) {
    await writeAll(Deno.stderr, encoder.encode(`${separator}\n`));
    return;
  }
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
