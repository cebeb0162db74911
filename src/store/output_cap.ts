/**
 * The per-job output cap, shared by every backend (pure logic).
 *
 * A job may store at most `maxJobOutputBytes` bytes of output, counted over
 * all its attempts (a cap per attempt would let a job that keeps failing
 * store the cap once per retry). Only the bytes a job printed count: not the
 * protobuf framing, not lifecycle events, not the marker. Past the cap:
 * - the publish that crosses it keeps its output up to exactly the cap and
 *   gets one more item in the same batch event: the marker, on stderr, so
 *   that every follower prints it where it prints errors;
 * - any later output of the job is dropped, in this attempt or the next;
 * - lifecycle events (process end, errors, heartbeats) are stored as ever.
 * A job that prints exactly the cap stores all of it and no marker: the
 * marker is due only once a byte beyond the cap arrives.
 *
 * Numbering stays gapless: stored events are renumbered one after another
 * from the job's highest sequence (the marker takes one number, dropped
 * output none), and the attempt's base moves so that the worker's next
 * number still lands right after the highest stored one. The marker sits in
 * the crossing batch itself, not in an event of its own, so it is stored in
 * the same write as the output it ends: the AWS store, which writes events
 * one item at a time, can never store one without the other.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import {
  EventType,
  type JobEvent,
  type OutputItem,
  OutputItemSchema,
  StreamType,
} from "../../gen/job/v1/job_pb.ts";
import {
  encodedSizeBound,
  type SequencedEvents,
  type SequenceState,
} from "../protocol/event_sequencing.ts";
import { eventTimestampMs, lastSequenceOf } from "../protocol/event_position.ts";

/** The cap `server`, `dev` and `orchestrator` apply unless told otherwise: 256 MiB. */
export const DEFAULT_MAX_JOB_OUTPUT_BYTES = 256 * 1024 * 1024;

/** The text of the marker stored where a job's output was cut. */
export function truncationMarkerText(maxJobOutputBytes: number): string {
  return `airunner: output truncated after ${maxJobOutputBytes} bytes\n`;
}

/** Where a job's output stands. */
export interface OutputState {
  /** Output bytes stored for the job so far, all attempts together. */
  readonly storedBytes: number;
  /** Whether the marker is stored (and so all further output is dropped). */
  readonly truncated: boolean;
}

/** The job's numbering and output after one stored event. */
export interface StateAfterEvent extends OutputState {
  /** The worker's number (within its attempt) of the last event this one accounts for. */
  readonly localEnd: bigint;
}

/** The result of {@link capOutput}. */
export interface CappedEvents extends OutputState {
  /** The events to store, numbered one after another from the job's highest sequence. */
  readonly events: JobEvent[];
  /** Their encoded sizes in bytes (a close upper bound for batches), index for index. */
  readonly sizes: number[];
  /** The job's state right after each event, index for index. */
  readonly after: StateAfterEvent[];
  /** The job's highest stored sequence once they are stored. */
  readonly highest: bigint;
  /** The attempt's base from now on: the stored sequence of the worker's next number, minus it. */
  readonly base: bigint;
  /** The worker's number of the last event of this publish that was not a resend. */
  readonly localHighest: bigint;
}

/**
 * Applies the cap to events {@link sequenceEvents} numbered (`sequenced`,
 * from `state`). `maxJobOutputBytes` 0 means no cap. Pure; the events it
 * returns are new objects or `sequenced`'s own copies, never the caller's.
 */
export function capOutput(
  sequenced: SequencedEvents,
  state: SequenceState & OutputState,
  maxJobOutputBytes: number,
): CappedEvents {
  let highest = state.highest;
  let storedBytes = state.storedBytes;
  let truncated = state.truncated;
  const events: JobEvent[] = [];
  const sizes: number[] = [];
  const after: StateAfterEvent[] = [];
  for (const [i, original] of sequenced.events.entries()) {
    const localEnd = lastSequenceOf(original) - state.base;
    let event: JobEvent | undefined = original;
    const bytes = outputBytesOf(original);
    if (bytes !== undefined) {
      if (truncated) {
        event = undefined;
      } else if (maxJobOutputBytes > 0 && storedBytes + bytes > maxJobOutputBytes) {
        // A cap lowered since earlier output was stored leaves no room at all.
        const cut = cutAt(
          original,
          Math.max(0, maxJobOutputBytes - storedBytes),
          maxJobOutputBytes,
        );
        event = cut.event;
        storedBytes += cut.keptBytes;
        truncated = true;
      } else {
        storedBytes += bytes;
      }
    }
    if (event === undefined) continue;
    highest = renumber(event, highest + 1n);
    events.push(event);
    sizes.push(event === original ? sequenced.sizes[i]! : encodedSizeBound(event));
    after.push({ localEnd, storedBytes, truncated });
  }
  const localHighest = sequenced.highest - state.base;
  return {
    events,
    sizes,
    after,
    highest,
    base: highest - localHighest,
    localHighest,
    storedBytes,
    truncated,
  };
}

/** Bytes of output `event` carries, or undefined when it is not an output event. */
function outputBytesOf(event: JobEvent): number | undefined {
  const data = event.eventData;
  if (data.case === "output") return data.value.output.byteLength;
  if (data.case !== "outputBatch") return undefined;
  let bytes = 0;
  for (const item of data.value.outputs) bytes += item.output.byteLength;
  return bytes;
}

/**
 * `event`'s output up to `room` bytes, then the marker, as one batch event.
 * A legacy OUTPUT event becomes a batch, the only event that can hold both.
 */
function cutAt(
  event: JobEvent,
  room: number,
  maxJobOutputBytes: number,
): { event: JobEvent; keptBytes: number } {
  const data = event.eventData;
  const items: OutputItem[] = data.case === "outputBatch"
    ? data.value.outputs
    : data.case === "output"
    ? [create(OutputItemSchema, { output: data.value.output, streamType: StreamType.STDOUT })]
    : [];
  const kept: OutputItem[] = [];
  let keptBytes = 0;
  let markerDeltaMs = 0;
  for (const item of items) {
    markerDeltaMs = item.timestampDeltaMs;
    const take = Math.min(room - keptBytes, item.output.byteLength);
    if (take === item.output.byteLength) {
      kept.push(item);
    } else if (take > 0) {
      kept.push({ ...item, output: item.output.subarray(0, take) });
    }
    keptBytes += take;
    if (take < item.output.byteLength) break;
  }
  kept.push(create(OutputItemSchema, {
    output: new TextEncoder().encode(truncationMarkerText(maxJobOutputBytes)),
    streamType: StreamType.STDERR,
    timestampDeltaMs: markerDeltaMs,
  }));
  const batch = data.case === "outputBatch" ? data.value : undefined;
  const cut: JobEvent = {
    ...event,
    eventType: EventType.OUTPUT_BATCH,
    eventData: {
      case: "outputBatch",
      value: {
        $typeName: "job.v1.OutputBatchEvent",
        outputs: kept,
        startSequence: 0n,
        endSequence: 0n,
        firstTimestampMs: batch?.firstTimestampMs ?? BigInt(eventTimestampMs(event, 0)),
        playbackIntervalMillis: batch?.playbackIntervalMillis ?? 0,
      },
    },
  };
  return { event: cut, keptBytes };
}

/** Numbers `event` from `start` (a batch one number per item); returns its last sequence. */
function renumber(event: JobEvent, start: bigint): bigint {
  event.sequence = start;
  if (event.eventData.case !== "outputBatch") return start;
  const batch = event.eventData.value;
  batch.startSequence = start;
  batch.endSequence = start + BigInt(batch.outputs.length) - 1n;
  return batch.endSequence;
}
