/**
 * Builders of the events a worker publishes for one attempt, numbered by an
 * {@link EventSequencer}: 1, 2, ... with one number per output item.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type JobEvent, OutputItemSchema } from "../../gen/job/v1/job_pb.ts";
import { makeEvent } from "../protocol/event_sequencing.ts";
import type { OutputBatch } from "./event_batcher.ts";

/** Numbers one attempt's events from 1. */
export class EventSequencer {
  #next = 1n;

  /** Reserves `width` consecutive numbers and returns the first. */
  take(width = 1): bigint {
    const first = this.#next;
    this.#next += BigInt(width);
    return first;
  }
}

/** PROCESS_START. */
export function processStartEvent(seq: EventSequencer, pid: number, startedMs: number): JobEvent {
  return makeEvent(seq.take(), startedMs, {
    case: "processStart",
    value: { $typeName: "job.v1.ProcessStartEvent", pid, startedAt: timestampFromMs(startedMs) },
  });
}

/** PROCESS_END. */
export function processEndEvent(
  seq: EventSequencer,
  pid: number,
  exitCode: number,
  runDurationMs: number,
  nowMs: number,
): JobEvent {
  return makeEvent(seq.take(), nowMs, {
    case: "processEnd",
    value: {
      $typeName: "job.v1.ProcessEndEvent",
      pid,
      exitCode,
      runDuration: durationFromMs(runDurationMs),
    },
  });
}

/** PROCESS_ERROR. */
export function processErrorEvent(seq: EventSequencer, message: string, nowMs: number): JobEvent {
  return makeEvent(seq.take(), nowMs, {
    case: "processError",
    value: { $typeName: "job.v1.ProcessErrorEvent", errorMessage: message },
  });
}

/** TERMINAL_RESIZE. */
export function terminalResizeEvent(
  seq: EventSequencer,
  cols: number,
  rows: number,
  nowMs: number,
): JobEvent {
  return makeEvent(seq.take(), nowMs, {
    case: "terminalResize",
    value: {
      $typeName: "job.v1.TerminalResizeEvent",
      cols,
      rows,
      widthPixels: 0,
      heightPixels: 0,
    },
  });
}

/** HEARTBEAT. */
export function heartbeatEvent(
  seq: EventSequencer,
  elapsedMs: number,
  processAlive: boolean,
  nowMs: number,
): JobEvent {
  return makeEvent(seq.take(), nowMs, {
    case: "heartbeat",
    value: {
      $typeName: "job.v1.HeartbeatEvent",
      elapsedTime: durationFromMs(elapsedMs),
      processAlive,
    },
  });
}

/** OUTPUT_BATCH for `batch`; takes one number per item. */
export function outputBatchEvent(
  seq: EventSequencer,
  batch: OutputBatch,
  playbackIntervalMillis: number,
): JobEvent {
  const first = batch.items[0]?.timeMs ?? 0;
  const start = seq.take(batch.items.length);
  return makeEvent(start, first, {
    case: "outputBatch",
    value: {
      $typeName: "job.v1.OutputBatchEvent",
      outputs: batch.items.map((item) =>
        create(OutputItemSchema, {
          output: item.output,
          streamType: item.streamType,
          timestampDeltaMs: item.timeMs - first,
        })
      ),
      startSequence: start,
      endSequence: start + BigInt(batch.items.length) - 1n,
      firstTimestampMs: BigInt(first),
      playbackIntervalMillis,
    },
  });
}
