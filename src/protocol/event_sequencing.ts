/**
 * Numbering of published events, shared by every backend (pure logic).
 *
 * A worker numbers its attempt's events 1, 2, 3, ... with no gap; an
 * OUTPUT_BATCH takes one number per item (start_sequence..end_sequence). The
 * store keeps, per job, the base of the current attempt (the highest sequence
 * stored when the attempt began) and the highest sequence stored so far, and
 * stores each event at `base + its number`. So:
 * - an event at or below the highest stored sequence is a resend of one
 *   already stored and is skipped (a retried publish stores nothing twice);
 * - the next event must continue right after the highest; one that skips
 *   ahead, overlaps a stored event or has no number (0) is refused, because
 *   accepting it would make a later resend look like a duplicate and lose it.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EventType, type JobEvent, JobEventSchema } from "../../gen/job/v1/job_pb.ts";
import { EventTooLargeError, InvalidEventError } from "./errors.ts";

/** Most output items one batch event may carry. */
export const MAX_BATCH_ITEMS = 10_000;

/** The event type each `event_data` case implies. */
const TYPE_OF_CASE = {
  processStart: EventType.PROCESS_START,
  processEnd: EventType.PROCESS_END,
  processError: EventType.PROCESS_ERROR,
  heartbeat: EventType.HEARTBEAT,
  output: EventType.OUTPUT,
  terminalResize: EventType.TERMINAL_RESIZE,
  outputBatch: EventType.OUTPUT_BATCH,
  attemptEnd: EventType.ATTEMPT_END,
} as const satisfies Record<NonNullable<JobEvent["eventData"]["case"]>, EventType>;

/** The result of {@link sequenceEvents}. */
export interface SequencedEvents {
  /** Copies of the events to store, numbered in the job's sequence, ascending. */
  readonly events: JobEvent[];
  /** Their encoded sizes in bytes, index for index. */
  readonly sizes: number[];
  /** The job's highest stored sequence once they are stored. */
  readonly highest: bigint;
}

/** Where the job's numbering stands. */
export interface SequenceState {
  /** Highest sequence stored when the current attempt began. */
  readonly base: bigint;
  /** Highest sequence stored so far. */
  readonly highest: bigint;
}

/**
 * Validates and numbers `events` for storage. Pure: throws before the caller
 * writes anything, so a bad event in a request stores none of them.
 *
 * @throws {InvalidEventError} for an event whose type, payload or batch range is inconsistent.
 * @throws {EventTooLargeError} for an event larger than `maxEventBytes` once encoded.
 */
export function sequenceEvents(
  incoming: readonly JobEvent[],
  state: SequenceState,
  nowMs: number,
  maxEventBytes: number,
): SequencedEvents {
  let highest = state.highest;
  const events: JobEvent[] = [];
  const sizes: number[] = [];
  for (const original of incoming) {
    // Shallow copies: the fields changed below are the numbers and the
    // timestamp, so the output bytes are shared, never copied.
    const event: JobEvent = { ...original };
    normalizeEventType(event);
    let batch = event.eventData.case === "outputBatch" ? event.eventData.value : undefined;
    if (batch !== undefined) {
      batch = { ...batch };
      event.eventData = { case: "outputBatch", value: batch };
    }
    const width = BigInt(batch === undefined ? 1 : batchWidth(event));

    let localStart = event.sequence;
    if (batch !== undefined && batch.startSequence !== 0n) {
      if (localStart !== 0n && localStart !== batch.startSequence) {
        throw new InvalidEventError(
          `output batch start_sequence ${batch.startSequence} differs from its sequence ${localStart}`,
        );
      }
      localStart = batch.startSequence;
    }
    if (localStart < 0n) throw new InvalidEventError(`sequence ${localStart} is negative`);
    if (batch !== undefined && batch.endSequence !== 0n && localStart !== 0n) {
      if (batch.endSequence !== localStart + width - 1n) {
        throw new InvalidEventError(
          `output batch range ${localStart}..${batch.endSequence} does not match its ${width} items`,
        );
      }
    }

    if (localStart === 0n) {
      throw new InvalidEventError("sequence is required: number an attempt's events from 1");
    }
    const start = state.base + localStart;
    const end = start + width - 1n;
    if (end <= highest) continue; // a resend: already stored
    if (start !== highest + 1n) {
      throw new InvalidEventError(
        start <= highest
          ? `sequence ${localStart}..${localStart + width - 1n} overlaps events already stored`
          : `sequence ${localStart} skips ahead: the next event of this attempt is ${
            highest + 1n - state.base
          }`,
      );
    }
    event.sequence = start;
    if (batch !== undefined) {
      batch.startSequence = start;
      batch.endSequence = end;
    }
    if (event.timestamp === undefined) event.timestamp = timestampFromMs(nowMs);

    const size = encodedSizeBound(event);
    if (size > maxEventBytes) throw new EventTooLargeError(size, maxEventBytes);
    events.push(event);
    sizes.push(size);
    highest = end;
  }
  return { events, sizes, highest };
}

/** Most bytes the protobuf encoding of one output item adds to its data (tags, lengths, fields). */
const ITEM_ENCODING_OVERHEAD = 24;
/** Most bytes the envelope of an output batch event adds to its items. */
const BATCH_ENCODING_OVERHEAD = 96;

/**
 * The encoded size of `event`, or for an output batch a close upper bound
 * computed without encoding it (encoding a 256 KiB batch just to weigh it
 * would copy every byte once more).
 */
export function encodedSizeBound(event: JobEvent): number {
  if (event.eventData.case !== "outputBatch") return toBinary(JobEventSchema, event).byteLength;
  let size = BATCH_ENCODING_OVERHEAD;
  for (const item of event.eventData.value.outputs) {
    size += item.output.byteLength + ITEM_ENCODING_OVERHEAD;
  }
  return size;
}

/** A JobEvent with the given payload, typed and stamped; `sequence` is the worker's number. */
export function makeEvent(
  sequence: bigint,
  timestampMs: number,
  eventData: JobEvent["eventData"],
): JobEvent {
  const eventType = eventData.case === undefined
    ? EventType.UNSPECIFIED
    : TYPE_OF_CASE[eventData.case];
  return create(JobEventSchema, {
    sequence,
    timestamp: timestampFromMs(timestampMs),
    eventType,
    eventData,
  });
}

function normalizeEventType(event: JobEvent): void {
  const dataCase = event.eventData.case;
  // Only the store writes an attempt's end: a worker that could would make
  // followers print a retry that never happened.
  if (dataCase === "attemptEnd" || event.eventType === EventType.ATTEMPT_END) {
    throw new InvalidEventError("attempt_end events are written by the server, not published");
  }
  if (dataCase === undefined) {
    if (event.eventType === EventType.UNSPECIFIED) {
      throw new InvalidEventError("event has neither event_type nor event_data");
    }
    return;
  }
  const implied = TYPE_OF_CASE[dataCase];
  if (event.eventType === EventType.UNSPECIFIED) {
    event.eventType = implied;
  } else if (event.eventType !== implied) {
    throw new InvalidEventError(
      `event_type ${
        EventType[event.eventType] ?? event.eventType
      } does not match event_data ${dataCase}`,
    );
  }
}

function batchWidth(event: JobEvent): number {
  const batch = event.eventData.case === "outputBatch" ? event.eventData.value : undefined;
  const n = batch?.outputs.length ?? 0;
  if (n === 0) throw new InvalidEventError("output batch has no items");
  if (n > MAX_BATCH_ITEMS) {
    throw new InvalidEventError(`output batch has ${n} items, more than ${MAX_BATCH_ITEMS}`);
  }
  return n;
}
