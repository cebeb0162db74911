/**
 * Reading a job's whole event log straight from a store, for tests that
 * check what was stored.
 *
 * @module
 */
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import type { JobStore } from "../../src/store/job_store.ts";

/** Every stored event of `jobId`, in order; the stream ends once the job is final. */
export async function storedEvents(
  store: JobStore,
  jobId: string,
  timeoutMs = 10_000,
): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  for await (
    const event of store.streamEvents(jobId, {
      fromSequence: 0n,
      fromTimestampMs: 0,
      eventTypes: new Set(),
      signal: AbortSignal.timeout(timeoutMs),
    })
  ) {
    events.push(event);
  }
  return events;
}
