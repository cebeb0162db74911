/**
 * Where an event sits in its job's history: its last sequence number and
 * its time. Pure reads of a JobEvent, apart from event_sequencing.ts so that
 * clients (`--follow`, `logs`) can resume a stream without loading the
 * protobuf runtime that building and sizing events needs.
 *
 * @module
 */
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";

/** When `event` happened, in Unix milliseconds (rounded down), or `fallback` when it has no timestamp. */
export function eventTimestampMs(event: JobEvent, fallback: number): number {
  const ts = event.timestamp;
  return ts === undefined ? fallback : Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6);
}

/** The last sequence an event occupies: end_sequence for a batch, its sequence otherwise. */
export function lastSequenceOf(event: JobEvent): bigint {
  return event.eventData.case === "outputBatch"
    ? event.eventData.value.endSequence
    : event.sequence;
}
