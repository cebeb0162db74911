/**
 * How a retried job's attempts look on a terminal and in JSON: the line
 * followers print between two attempts, the attempt lines and retry policy
 * of `get`, the not-before time of a job waiting out a backoff. Pure: times
 * are arguments.
 *
 * The separator, from an ATTEMPT_END event (one per attempt that another
 * follows):
 *
 * ```text
 * airunner: attempt 2 of 4 after exit 1, in 8 s
 * airunner: attempt 3 of 4 after a timeout, in 15 s
 * airunner: attempt 2 of 3 after a lost worker
 * ```
 *
 * The timestamp helpers `millis` and `iso` live here, and job_format.ts
 * (which builds on this module) re-exports them, so the two never import
 * each other.
 *
 * @module
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type {
  AttemptEndEvent,
  ExitCodeRange,
  JobAttempt,
  JobEvent,
  RetryPolicy,
} from "../../gen/job/v1/job_pb.ts";
import { FAILURE_REASON_EXHAUSTED, FAILURE_REASON_WORKER_LOST } from "../protocol/attempts.ts";
import { effectivePolicy } from "../store/retry_policy.ts";
import { formatElapsed } from "./terminal.ts";
import { millis } from "../protocol/timestamp_ms.ts";

/** One attempt in `get --json` (null: not known, or not yet). */
export interface AttemptJson {
  /** 1 for the first. */
  readonly number: number;
  readonly worker: string | null;
  readonly startedAt: string | null;
  /** null while it runs. */
  readonly endedAt: string | null;
  /** completed, failed, timed_out, lost, handed_back or cancelled; null while it runs. */
  readonly outcome: string | null;
  /** The command's exit code; null when none ran to an end (running, lost, handed back). */
  readonly exitCode: number | null;
  readonly error: string | null;
  /** Its events' sequences, first..last; both null when it has none. */
  readonly firstSequence: number | null;
  readonly lastSequence: number | null;
}

/** A job's retry policy in `get --json`, defaults filled in. */
export interface RetryJson {
  /** Attempts after the first. */
  readonly maxRetries: number;
  /** The exit codes that retry, as `1,2,75-78`; null: any non-zero but 126 and 127. */
  readonly retryOn: string | null;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly retryOnTimeout: boolean;
}

export { millis };

/** A timestamp in RFC 3339 (UTC, milliseconds), or null when unset. */
export function iso(ts: Timestamp | undefined): string | null {
  const ms = millis(ts);
  return ms === undefined ? null : new Date(ms).toISOString();
}

/** The attempts of a job for JSON, oldest first. */
export function attemptsJson(attempts: readonly JobAttempt[]): AttemptJson[] {
  return attempts.map((a) => {
    const events = a.lastSequence > 0n;
    return {
      number: a.number,
      worker: a.worker || null,
      startedAt: iso(a.startedAt),
      endedAt: iso(a.endedAt),
      outcome: a.outcome || null,
      exitCode: attemptExitCode(a),
      error: a.errorMessage || null,
      firstSequence: events ? Number(a.firstSequence) : null,
      lastSequence: events ? Number(a.lastSequence) : null,
    };
  });
}

/** The exit code an attempt's command ended with, or null when none ended (or none is known). */
export function attemptExitCode(a: JobAttempt): number | null {
  switch (a.outcome) {
    case "completed":
    case "failed":
    case "timed_out":
      return a.exitCode;
    case "cancelled":
      // Cancelled while its worker was gone, no command ended: the store records 0.
      return a.exitCode === 0 ? null : a.exitCode;
    default:
      return null;
  }
}

/** A retry policy for JSON, with the server's defaults for what it leaves at 0; null when none. */
export function retryJson(policy: RetryPolicy | undefined): RetryJson | null {
  if (policy === undefined) return null;
  const effective = effectivePolicy(policy);
  return {
    maxRetries: effective.maxRetries,
    retryOn: policy.retryOnExitCodes.length === 0
      ? null
      : exitCodeRangesText(policy.retryOnExitCodes),
    minDelayMs: effective.minDelayMs,
    maxDelayMs: effective.maxDelayMs,
    retryOnTimeout: effective.retryOnTimeout,
  };
}

/** Exit-code ranges as `--retry-on` takes them: `1,2,75-78`. */
export function exitCodeRangesText(
  ranges: readonly Pick<ExitCodeRange, "first" | "last">[],
): string {
  return ranges.map((r) => r.first === r.last ? String(r.first) : `${r.first}-${r.last}`).join(
    ",",
  );
}

/** A duration as `--retry-delay` takes it: `100ms`, `1s`, `1.5s`, `5m`, `1h30m`. */
export function durationText(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor(ms / 60_000) % 60;
  const seconds = (ms % 60_000) / 1000;
  return [
    hours > 0 ? `${hours}h` : "",
    minutes > 0 ? `${minutes}m` : "",
    seconds > 0 ? `${seconds}s` : "",
  ].join("");
}

/** `get`'s lines of a retry policy, as [name, value] pairs; none when the job has none. */
export function retryPolicyLines(policy: RetryPolicy | undefined): [string, string][] {
  const json = retryJson(policy);
  if (json === null) return [];
  return [
    ["retries", String(json.maxRetries)],
    ["retry on", json.retryOn ?? "any non-zero exit but 126, 127"],
    ["retry delay", `${durationText(json.minDelayMs)}..${durationText(json.maxDelayMs)}`],
    ["retry on timeout", json.retryOnTimeout ? "yes" : "no"],
  ];
}

/**
 * One attempt on one line, for `get`:
 * `failed, exit 1, on w1, 2025-01-02T03:04:05.000Z for 3s, events 4..9`.
 */
export function describeAttempt(a: JobAttempt, nowMs: number): string {
  const startedMs = millis(a.startedAt);
  const endedMs = millis(a.endedAt);
  const parts = [a.outcome || "running"];
  const exitCode = attemptExitCode(a);
  if (exitCode !== null) parts.push(`exit ${exitCode}`);
  const error = firstLine(a.errorMessage);
  if (error !== "" && error !== `exited with code ${a.exitCode}`) parts.push(error);
  if (a.worker !== "") parts.push(`on ${a.worker}`);
  if (startedMs !== undefined) {
    parts.push(
      `${new Date(startedMs).toISOString()} for ${formatElapsed((endedMs ?? nowMs) - startedMs)}${
        endedMs === undefined ? " so far" : ""
      }`,
    );
  }
  parts.push(
    a.lastSequence > 0n ? `events ${a.firstSequence}..${a.lastSequence}` : "no events",
  );
  return parts.join(", ");
}

/** `get`'s line of a not-before time: `2025-01-02T03:04:05.000Z (in 8s)`. */
export function notBeforeText(notBefore: Timestamp, nowMs: number): string {
  const ms = millis(notBefore)!;
  const when = ms > nowMs ? `in ${formatElapsed(ms - nowMs)}` : "due now";
  return `${new Date(ms).toISOString()} (${when})`;
}

/**
 * The table's note on a job waiting out a backoff (`retry in 8s`), or, for
 * a `firstAttempt` not yet run, a delayed start (`starts in 10m`); undefined
 * when it waits for nothing.
 */
export function retryCountdown(
  notBefore: Timestamp | undefined,
  nowMs: number,
  firstAttempt = false,
): string | undefined {
  const ms = millis(notBefore);
  if (ms === undefined || ms <= nowMs) return undefined;
  return `${firstAttempt ? "starts" : "retry"} in ${formatElapsed(ms - nowMs)}`;
}

/** `get`'s explanation of a failure reason. */
export function failureReasonText(reason: string): string {
  switch (reason) {
    case FAILURE_REASON_EXHAUSTED:
      return `${reason} (every attempt its retry policy allows failed)`;
    case FAILURE_REASON_WORKER_LOST:
      return `${reason} (its workers were lost too many times)`;
    default:
      return reason;
  }
}

/**
 * The line followers print (on stderr) between two attempts, from the
 * ATTEMPT_END event `event`; undefined for any other event.
 */
export function attemptSeparator(event: JobEvent): string | undefined {
  if (event.eventData.case !== "attemptEnd") return undefined;
  return `airunner: ${attemptEndText(event.eventData.value, millis(event.timestamp))}`;
}

/**
 * What an ATTEMPT_END event says, `attempt 2 of 4 after exit 1, in 8 s`:
 * the next attempt, what ended the last one, and how long until the next
 * may start as of `eventMs` (when the event was written; left out when it
 * may start at once or the time is unknown). An attempt beyond the count
 * (a lost worker's, or one after a redrive) reads `attempt 5 after ...`.
 */
export function attemptEndText(notice: AttemptEndEvent, eventMs: number | undefined): string {
  const next = notice.attemptsAllowed >= notice.nextAttempt
    ? `attempt ${notice.nextAttempt} of ${notice.attemptsAllowed}`
    : `attempt ${notice.nextAttempt}`;
  const notBeforeMs = millis(notice.nextNotBefore);
  const waitMs = notBeforeMs === undefined || eventMs === undefined ? 0 : notBeforeMs - eventMs;
  const wait = waitText(waitMs);
  return `${next} after ${attemptCause(notice)}${wait === "" ? "" : `, in ${wait}`}`;
}

/** What ended an attempt: `exit 1`, `a timeout`, `a lost worker`, or its error. */
function attemptCause(notice: AttemptEndEvent): string {
  if (notice.outcome === "timed_out") return "a timeout";
  if (notice.outcome === "lost") return "a lost worker";
  const error = firstLine(notice.errorMessage);
  const plain = error === "" || error === `exited with code ${notice.exitCode}`;
  if (notice.exitCode !== 0) {
    return plain ? `exit ${notice.exitCode}` : `exit ${notice.exitCode} (${error})`;
  }
  return plain ? "a failure" : error;
}

/** A wait rounded for people: `8 s`, `5 min`, `3 h`; "" under half a second. */
function waitText(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds <= 0) return "";
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return `${minutes} min`;
  return `${Math.round(minutes / 60)} h`;
}

/** The first line of `text`, trimmed, at most 120 characters. */
function firstLine(text: string): string {
  const line = text.trim().split("\n", 1)[0]!.trim();
  return line.length <= 120 ? line : `${line.slice(0, 119)}…`;
}
