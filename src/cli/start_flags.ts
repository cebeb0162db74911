/**
 * When and in what order a job runs, as the CLI takes it: `submit --delay
 * 10m`, `--at 2026-12-24T09:00:00Z`, `--priority 5`, and the keys `delay`,
 * `at` and `priority` of job files and `--batch` lines. Pure. Each value is
 * checked where it is read, by the server's ranges (protocol/limits.ts), so
 * a mistake names the flag or key as the user wrote it.
 *
 * @module
 */
import { MAX_PRIORITY, MAX_START_DELAY_MS, MIN_PRIORITY } from "../protocol/limits.ts";
import { parseDurationMs, UsageError } from "./parse.ts";
import type { JobParams } from "../../gen/job/v1/job_pb.ts";
import { InvalidArgumentError } from "../protocol/invalid_argument.ts";
import { checkRunAtNotPast, validateStartTime } from "../protocol/timing_validation.ts";

/** A delayed start: a wait from the enqueue, or a point in time (Unix ms). */
export type StartTime =
  | { readonly delayMs: number; readonly runAtMs?: undefined }
  | { readonly runAtMs: number; readonly delayMs?: undefined };

/** `10m` as a start delay of at most 366 days, named `label` in an error. */
export function parseStartDelay(text: string, label: string): StartTime {
  const ms = parseDurationMs(text, label);
  if (ms > MAX_START_DELAY_MS) {
    throw new UsageError(`${label}: "${text}" is longer than the limit of 366 days`);
  }
  return { delayMs: ms };
}

/**
 * An RFC 3339 time with a zone (`2026-12-24T09:00:00Z`, `...+01:00`) as a
 * start time. A time without a zone is refused rather than read in this
 * machine's zone: a job file or script moved to a server elsewhere would
 * run at another hour.
 */
export function parseRunAt(text: string, label: string): StartTime {
  const value = text.trim();
  const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$/;
  if (!rfc3339.test(value)) {
    const local = /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/.test(value);
    throw new UsageError(
      local
        ? `${label}: "${text}" has no time zone; add Z for UTC or an offset, as in ${
          value.length > 10 ? value : `${value}T09:00:00`
        }Z or ${value.length > 10 ? value : `${value}T09:00:00`}+01:00`
        : `${label}: "${text}" is not an RFC 3339 time such as 2026-12-24T09:00:00Z`,
    );
  }
  const ms = Date.parse(value.replace(" ", "T"));
  if (Number.isNaN(ms) || !isCalendarTime(value)) {
    throw new UsageError(`${label}: "${text}" is not a valid time (no such day or hour)`);
  }
  return { runAtMs: ms };
}

/** A priority, -100..100 (higher runs first), named `label` in an error. */
export function parsePriority(value: string | number, label: string): number {
  const text = String(value).trim();
  if (!/^[+-]?\d+$/.test(text)) {
    throw new UsageError(`${label}: "${value}" is not a whole number`);
  }
  const n = Number(text);
  if (n < MIN_PRIORITY || n > MAX_PRIORITY) {
    throw new UsageError(`${label}: is ${n}, outside ${MIN_PRIORITY}..${MAX_PRIORITY}`);
  }
  return n;
}

/** `--delay` and `--at` (or the keys `delay` and `at`) together: one of them, or none. */
export function startTimeOf(
  delay: StartTime | undefined,
  at: StartTime | undefined,
  labels: { readonly delay: string; readonly at: string },
): StartTime | undefined {
  if (delay !== undefined && at !== undefined) {
    throw new UsageError(`${labels.delay} and ${labels.at}: give one, not both`);
  }
  return delay ?? at;
}

/**
 * Whether the date and time `value` writes exist as written: Date.parse
 * moves 2026-02-30 to March 2 and 24:00 to the next day rather than
 * refusing them, so the fields are built again and compared.
 */
function isCalendarTime(value: string): boolean {
  const [, y, mo, d, h, mi, sec] = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2}))?/
    .exec(value)!.map(Number);
  const t = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, Number.isNaN(sec) ? 0 : sec!));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo! - 1 && t.getUTCDate() === d &&
    t.getUTCHours() === h && t.getUTCMinutes() === mi;
}

/**
 * The server's checks of a job's start time, made before anything is sent
 * so that a mistake is a usage error naming `label` (`--at`, `line 7: at`):
 * no more than 366 days ahead and, for a submit without a request id, not
 * long past. (A repeat with its request id may come late: the server
 * answers it with the job it made.)
 */
export function checkStartTime(params: JobParams, requestId: string, label: string): void {
  try {
    const now = Date.now();
    validateStartTime(params, "job_params", now);
    if (requestId === "") checkRunAtNotPast(params, now);
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    throw new UsageError(`${label}: ${error.problem}`);
  }
}
