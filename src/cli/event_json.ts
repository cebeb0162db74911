/**
 * A job's events as JSON lines (`logs --json`): one object per output
 * chunk, with its own sequence, time and stream, and one per lifecycle
 * event with its fields. Pure; output is decoded as UTF-8 per stream, so a
 * character cut between two chunks is whole in the later one.
 *
 * ```json
 * {"jobId":"0193…","sequence":4,"timestamp":"2026-12-04T21:00:00.120Z","type":"output","stream":"stdout","text":"hello\n"}
 * {"jobId":"0193…","sequence":6,"timestamp":"2026-12-04T21:00:00.150Z","type":"process_end","pid":812,"exitCode":0,"durationMs":41}
 * ```
 *
 * @module
 */
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import { EventType, StreamType } from "../../gen/job/v1/job_lite.ts";
import { millis } from "../protocol/timestamp_ms.ts";
import { iso } from "./attempt_format.ts";
import { outputChunks } from "./job_format.ts";

/** The event types `logs --json` reads: output, the notices between attempts, process starts and ends. */
export const JSON_EVENT_TYPES: readonly EventType[] = [
  EventType.OUTPUT_BATCH,
  EventType.OUTPUT,
  EventType.ATTEMPT_END,
  EventType.PROCESS_START,
  EventType.PROCESS_END,
  EventType.PROCESS_ERROR,
];

/** The fields every line has. */
export type EventJsonBase = {
  readonly jobId: string;
  readonly sequence: number;
  /** RFC 3339, UTC, milliseconds; null when the event has no time. */
  readonly timestamp: string | null;
  /** output, process_start, process_end, process_error, attempt_end, heartbeat, terminal_resize. */
  readonly type: string;
};

/** One line of `logs --json`: the base fields and those of its type. */
export type EventJson = EventJsonBase & Readonly<Record<string, unknown>>;

/** Turns one job's events into JSON lines, keeping each stream's partial characters between calls. */
export class EventJsonEncoder {
  readonly #jobId: string;
  readonly #decoders = new Map<StreamType, TextDecoder>();

  constructor(jobId: string) {
    this.#jobId = jobId;
  }

  /** The text to print for `event`: its lines as JSON, each ending in a newline ("" for none). */
  text(event: JobEvent): string {
    return this.lines(event).map((line) => `${JSON.stringify(line)}\n`).join("");
  }

  /** The lines of `event`: one per output chunk, one for anything else. */
  lines(event: JobEvent): EventJson[] {
    const base = (sequence: bigint, ms: number | undefined, type: string): EventJsonBase => ({
      jobId: this.#jobId,
      sequence: Number(sequence),
      timestamp: ms === undefined ? null : new Date(ms).toISOString(),
      type,
    });
    const data = event.eventData;
    if (data.case === "output" || data.case === "outputBatch") {
      return outputChunks(event).map((chunk, i) => ({
        ...base(event.sequence + BigInt(i), chunk.timeMs || undefined, "output"),
        stream: chunk.stream === StreamType.STDERR ? "stderr" : "stdout",
        text: this.#decode(chunk.stream, chunk.bytes),
      }));
    }
    const head = base(event.sequence, millis(event.timestamp), typeName(event.eventType));
    switch (data.case) {
      case "processStart":
        return [{ ...head, pid: data.value.pid, startedAt: iso(data.value.startedAt) }];
      case "processEnd": {
        const d = data.value.runDuration;
        const durationMs = d === undefined
          ? null
          : Math.round(Number(d.seconds) * 1000 + d.nanos / 1e6);
        return [{ ...head, pid: data.value.pid, exitCode: data.value.exitCode, durationMs }];
      }
      case "processError":
        return [{ ...head, error: data.value.errorMessage }];
      case "attemptEnd": {
        const n = data.value;
        return [{
          ...head,
          attempt: n.attempt,
          outcome: n.outcome,
          exitCode: n.exitCode,
          error: n.errorMessage || null,
          nextAttempt: n.nextAttempt,
          attemptsAllowed: n.attemptsAllowed,
          nextNotBefore: iso(n.nextNotBefore),
        }];
      }
      case "heartbeat": {
        const d = data.value.elapsedTime;
        const elapsedMs = d === undefined ? null : Number(d.seconds) * 1000 + d.nanos / 1e6;
        return [{ ...head, alive: data.value.processAlive, elapsedMs }];
      }
      case "terminalResize":
        return [{ ...head, cols: data.value.cols, rows: data.value.rows }];
      default:
        return [head];
    }
  }

  /** `bytes` of `stream` as text; a character cut at the end waits for the next chunk. */
  #decode(stream: StreamType, bytes: Uint8Array): string {
    let decoder = this.#decoders.get(stream);
    if (decoder === undefined) {
      decoder = new TextDecoder();
      this.#decoders.set(stream, decoder);
    }
    return decoder.decode(bytes, { stream: true });
  }
}

/** `EVENT_TYPE_PROCESS_END` -> `process_end`. */
function typeName(type: EventType): string {
  return (EventType[type] ?? "unspecified").toLowerCase();
}
