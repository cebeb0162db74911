/**
 * A job's retry settings as the CLI takes them: `submit --retries N
 * --retry-on 1,2,75-78 --retry-delay 5s..10m --no-retry-on-timeout`, the
 * keys `retries`, `retryOn`, `retryDelay` and `retryOnTimeout` of job files
 * and `--batch` lines, and `server --default-retries/--default-retry-delay`.
 * Pure. Each value is parsed where it comes from and checked there by the
 * server's own rules (validateRetryPolicy), so a typo fails before a round
 * trip, named as the user wrote it (`--retry-on`, `line 7: retryDelay`).
 *
 * @module
 */
import type { ExitCodeRange, RetryPolicy } from "../../gen/job/v1/job_pb.ts";
import { InvalidArgumentError, validateRetryPolicy } from "../protocol/request_validation.ts";
import { parseDurationMs, UsageError } from "./parse.ts";

/** A retry delay: the first wait and the longest (0: the server's default for either). */
export interface RetryDelay {
  readonly minMs: number;
  readonly maxMs: number;
}

/** The retry settings of one source (flags, a job file, a batch line); undefined: not given. */
export interface RetrySettings {
  readonly retries?: number | undefined;
  readonly retryOn?: readonly ExitCodeRange[] | undefined;
  readonly retryDelay?: RetryDelay | undefined;
  readonly retryOnTimeout?: boolean | undefined;
}

/** `2` as a retry count within the server's range, named `label` in an error. */
export function parseRetries(value: string | number, label: string): number {
  const text = String(value).trim();
  if (!/^\d+$/.test(text)) throw new UsageError(`${label}: "${value}" is not a whole number`);
  const retries = Number(text);
  checkedPolicy({ maxRetries: retries }, label);
  return retries;
}

/** `1,2,75-78` (or a list of codes and ranges) as exit-code ranges, checked. */
export function parseRetryOn(
  value: string | readonly (string | number)[],
  label: string,
): ExitCodeRange[] {
  const parts = typeof value === "string" ? value.split(",") : value.map(String);
  const ranges = parts.map((part) => {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (m === null) {
      throw new UsageError(`${label}: "${part}" is not an exit code or a range such as 75-78`);
    }
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    return { $typeName: "job.v1.ExitCodeRange", first, last } satisfies ExitCodeRange;
  });
  checkedPolicy({ retryOnExitCodes: ranges }, label);
  return ranges;
}

/** `5s..10m` (first wait..longest) or `5s` (the first; the longest stays the default). */
export function parseRetryDelay(text: string, label: string): RetryDelay {
  const [min, max, extra] = text.split("..");
  if (extra !== undefined || min === undefined || min.trim() === "") {
    throw new UsageError(`${label}: "${text}" is not a delay such as 5s or 5s..10m`);
  }
  const delay = {
    minMs: parseDurationMs(min, label),
    maxMs: max === undefined ? 0 : parseDurationMs(max, label),
  };
  checkedPolicy({ minDelayMs: BigInt(delay.minMs), maxDelayMs: BigInt(delay.maxMs) }, label);
  return delay;
}

/** How a source spells each retry setting, for the error that names one. */
export type RetryNames = Readonly<Record<keyof RetrySettings, string>>;

/** The spellings of submit flags, with the job-file and batch-line keys they share a spec with. */
const SUBMIT_NAMES: RetryNames = {
  retries: "--retries (retries)",
  retryOn: "--retry-on (retryOn)",
  retryDelay: "--retry-delay (retryDelay)",
  retryOnTimeout: "--no-retry-on-timeout (retryOnTimeout)",
};

/**
 * The policy `settings` ask for, or undefined when they name none (the
 * server's default applies). A setting without a retry count is refused:
 * its policy would retry nothing and, being the job's own, would also
 * switch off the server's `--default-retries`.
 */
export function retryPolicyOf(
  settings: RetrySettings,
  names: RetryNames = SUBMIT_NAMES,
): RetryPolicy | undefined {
  const { retries, retryOn, retryDelay, retryOnTimeout } = settings;
  if (retries === undefined) {
    const given = (["retryOn", "retryDelay", "retryOnTimeout"] as const).find((key) =>
      settings[key] !== undefined
    );
    if (given === undefined) return undefined;
    throw new UsageError(
      `${names[given]} needs ${names.retries}: without a retry count the job would not retry`,
    );
  }
  return policyOf({
    maxRetries: retries,
    retryOnExitCodes: [...retryOn ?? []],
    minDelayMs: BigInt(retryDelay?.minMs ?? 0),
    maxDelayMs: BigInt(retryDelay?.maxMs ?? 0),
    noRetryOnTimeout: retryOnTimeout === false,
  });
}

function policyOf(fields: Partial<Omit<RetryPolicy, "$typeName">>): RetryPolicy {
  return {
    $typeName: "job.v1.RetryPolicy",
    maxRetries: 0,
    retryOnExitCodes: [],
    minDelayMs: 0n,
    maxDelayMs: 0n,
    noRetryOnTimeout: false,
    ...fields,
  };
}

/** Checks `fields` by the server's rules; a complaint becomes a usage error naming `label`. */
function checkedPolicy(fields: Partial<Omit<RetryPolicy, "$typeName">>, label: string): void {
  try {
    validateRetryPolicy(policyOf(fields), "retry");
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    throw new UsageError(`${label}: ${error.problem}`);
  }
}
