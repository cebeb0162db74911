/**
 * Replay followed by live tail, shared by the backends. The backend supplies
 * reads of its event log and a way to wait for new events; this module turns
 * them into a stream that has no gap and no duplicate, applies the caller's
 * filter to replay and tail alike, and ends once the job is finished and all
 * of its events have been delivered.
 *
 * @module
 */
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import type { StreamEventsOptions } from "./job_store.ts";
import { eventTimestampMs, lastSequenceOf } from "../protocol/event_position.ts";
import { countStoreMetric, recordStoreMetric } from "./store_meter.ts";

/** Events read per round trip to the backend. */
export const TAIL_PAGE_SIZE = 500;

/** What a backend gives the tail. */
export interface EventLogSource {
  /**
   * Up to `limit` events of the job whose last sequence is at least
   * `fromSequence`, ascending. Throws JobNotFoundError for an unknown job.
   */
  readEvents(jobId: string, fromSequence: bigint, limit: number): Promise<JobEvent[]>;
  /** Whether the job is in a final state. Throws JobNotFoundError for an unknown job. */
  isFinished(jobId: string): Promise<boolean>;
  /**
   * Starts waiting, at once, for the job's log or state to change; the
   * promise resolves on change or when `signal` aborts.
   */
  waitForChange(jobId: string, signal: AbortSignal): Promise<void>;
}

/**
 * Streams a job's events per `options` from `source`. Ends normally only once
 * the job is finished and every event has been delivered; when
 * `options.signal` aborts first, it makes one last pass (so a job that has
 * just finished still ends cleanly) and otherwise throws the signal's reason.
 */
export async function* tailEvents(
  source: EventLogSource,
  jobId: string,
  options: StreamEventsOptions,
): AsyncGenerator<JobEvent> {
  const { fromTimestampMs, eventTypes, signal } = options;
  let cursor = options.fromSequence > 1n ? options.fromSequence : 1n;
  // The first pass replays what is stored; later passes tail.
  const replayStarted = performance.now();
  let replaying = true;
  let replayed = 0;
  const replayDone = () => {
    if (!replaying) return;
    replaying = false;
    recordStoreMetric(
      "airunner.streams.historical_replay.duration",
      performance.now() - replayStarted,
    );
    countStoreMetric("airunner.streams.historical_replay.events.total", replayed);
  };
  for (;;) {
    const stopWaiting = new AbortController();
    const onAbort = () => stopWaiting.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      // Register the wait before reading, so a write between the read and
      // the wait still wakes us. Read "finished" before the events: a job
      // finishes only after its last event is stored.
      const changed = source.waitForChange(jobId, stopWaiting.signal);
      const finished = await source.isFinished(jobId);
      let page: JobEvent[];
      do {
        page = await source.readEvents(jobId, cursor, TAIL_PAGE_SIZE);
        for (const event of page) {
          cursor = lastSequenceOf(event) + 1n;
          if (eventTypes.size > 0 && !eventTypes.has(event.eventType)) continue;
          if (fromTimestampMs > 0 && eventTimestampMs(event, 0) < fromTimestampMs) continue;
          if (replaying) replayed++;
          yield event;
        }
      } while (page.length === TAIL_PAGE_SIZE);
      replayDone();
      if (finished) return;
      if (signal.aborted) throw signal.reason;
      await changed;
    } finally {
      signal.removeEventListener("abort", onAbort);
      stopWaiting.abort();
    }
  }
}
