/**
 * Following jobs from the benchmark process and timing what arrives.
 *
 * @module
 */
import { EventType, type JobEvent } from "../../gen/job/v1/job_pb.ts";
import type { AirunnerClients } from "../../src/protocol/transport.ts";

/** Streams a job's events until it finishes, calling `onEvent` with each and its arrival time. */
export async function followEvents(
  clients: AirunnerClients,
  jobId: string,
  onEvent: (event: JobEvent, arrivedMs: number) => void,
  eventFilter: EventType[] = [],
): Promise<void> {
  for await (const { event } of clients.events.streamJobEvents({ jobId, eventFilter })) {
    if (event !== undefined) onEvent(event, performance.now());
  }
}

/** The output chunks of an OUTPUT_BATCH event (none for other events). */
export function outputsOf(event: JobEvent): Uint8Array[] {
  return event.eventData.case === "outputBatch"
    ? event.eventData.value.outputs.map((o) => o.output)
    : [];
}

/** Waits until `count` jobs of `queue` are COMPLETED or FAILED; returns when the last finished. */
export async function waitForFinished(
  clients: AirunnerClients,
  queue: string,
  count: number,
  pollMs = 20,
): Promise<number> {
  for (;;) {
    const [completed, failed] = await Promise.all(
      [3, 4].map((state) =>
        clients.jobs.listJobs({ queue, state, pageSize: 1 }).then((r) =>
          r.jobs.length === 0 ? 0 : r.lastPage
        )
      ),
    );
    if (completed! + failed! >= count) return performance.now();
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

export { EventType };
