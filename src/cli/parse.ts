/**
 * Parsers of command-line values (pure). Each throws {@link UsageError}
 * naming the flag and what it expects.
 *
 * @module
 */
import { JobState } from "../../gen/job/v1/job_lite.ts";
import { validateJobId } from "../protocol/request_validation.ts";

/** A command-line mistake: printed as one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Runs a validator of the server's rules and reports its complaint as a usage error. */
export function usageChecked<T>(validate: () => T): T {
  try {
    return validate();
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration such as `90s`, `5m`, `1h30m`, `250ms` or a bare number
 * of seconds, into milliseconds.
 */
export function parseDurationMs(value: string, flag: string): number {
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) {
    throw new UsageError(`${flag}: "${value}" is not a duration (examples: 90s, 5m, 1h30m)`);
  }
  return Math.round(parts.reduce((ms, p) => ms + Number(p[1]) * DURATION_UNITS[p[2]!]!, 0));
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * Parses a size in bytes: a whole number of bytes (`1048576`) or a number
 * with a unit, binary (`64KiB`, `64MiB`, `1.5GiB`, `1TiB`) or decimal (`500MB`,
 * `2GB`), any case; a fraction of a byte is dropped. At most `max` bytes.
 */
export function parseByteSize(value: string, flag: string, max: number): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = SIZE_UNITS[(match?.[2] || "b").toLowerCase()];
  if (match === null || unit === undefined || (match[2] === "" && match[1]!.includes("."))) {
    throw new UsageError(
      `${flag}: "${value}" is not a size in bytes (examples: 1048576, 64MiB, 1GiB)`,
    );
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (bytes > max) throw new UsageError(`${flag}: ${value} is more than ${max} bytes`);
  return bytes;
}

/** Parses a whole number within [min, max]. */
export function parseInteger(value: string, flag: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(value.trim())) {
    throw new UsageError(`${flag}: "${value}" is not a whole number`);
  }
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${flag}: ${n} is outside ${min}..${max}`);
  return n;
}

/** Parses `KEY=VALUE` (the value may contain '=' and be empty). */
export function parseKeyValue(entry: string, flag: string): [string, string] {
  const eq = entry.indexOf("=");
  if (eq <= 0) throw new UsageError(`${flag}: "${entry}" is not KEY=VALUE`);
  return [entry.slice(0, eq), entry.slice(eq + 1)];
}

/** Collects repeated `KEY=VALUE` flags into a record; later entries win. */
export function parseKeyValues(entries: readonly string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of entries) {
    const [key, value] = parseKeyValue(entry, flag);
    out[key] = value;
  }
  return out;
}

/**
 * Parses repeated `--secret-env` entries: `NAME=VALUE`, or `NAME` alone,
 * whose value is read from the submitter's own environment variable NAME,
 * so the value need not appear in shell history or `ps`. Later entries win.
 */
export function parseSecretEnvEntries(
  entries: readonly string[],
  flag: string,
  readEnv: (name: string) => string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of entries) {
    let name: string;
    let value: string;
    if (entry.includes("=")) {
      [name, value] = parseKeyValue(entry, flag);
      if (value === "") {
        throw new UsageError(`${flag}: ${name} has an empty value; a secret needs at least 1 byte`);
      }
    } else {
      name = entry;
      if (name === "") throw new UsageError(`${flag}: give NAME=VALUE, or NAME to read $NAME`);
      const found = readEnv(name);
      if (found === undefined) {
        throw new UsageError(
          `${flag}: ${name} is not set in your environment (export ${name} first, or give ${name}=VALUE)`,
        );
      }
      if (found === "") {
        throw new UsageError(
          `${flag}: ${name} is empty in your environment; a secret needs at least 1 byte`,
        );
      }
      value = found;
    }
    out[name] = value;
  }
  return out;
}

/** A listen address. */
export interface ListenAddress {
  readonly hostname: string;
  readonly port: number;
}

/** Parses `HOST:PORT`, `[IPv6]:PORT` or a bare `PORT` (loopback). */
export function parseListenAddress(value: string, flag = "--listen"): ListenAddress {
  const text = value.trim();
  let host = "127.0.0.1";
  let port = text;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (v6 !== null) {
    host = v6[1]!;
    port = v6[2]!;
  } else if (text.includes(":")) {
    const colon = text.lastIndexOf(":");
    host = text.slice(0, colon) || "0.0.0.0";
    port = text.slice(colon + 1);
  }
  if (!/^\d+$/.test(port) || Number(port) > 65535) {
    throw new UsageError(`${flag}: "${value}" is not HOST:PORT (example: 127.0.0.1:8080)`);
  }
  return { hostname: host, port: Number(port) };
}

/** Whether `hostname` is a loopback address (the host itself only). */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** Job state names accepted on the command line. */
export const STATE_NAMES = ["scheduled", "running", "completed", "failed", "cancelled"] as const;

/** Parses a state name such as `failed` (any case). */
export function parseJobState(value: string, flag = "--state"): JobState {
  const name = value.trim().toUpperCase().replace(/^JOB_STATE_/, "");
  const state = JobState[name as keyof typeof JobState];
  // A number ("3") names no state: the enum maps it back to a name.
  if (typeof state !== "number" || state === JobState.UNSPECIFIED) {
    throw new UsageError(`${flag}: "${value}" is not one of ${STATE_NAMES.join(", ")}`);
  }
  return state;
}

/** The lower-case name of a state, such as `failed`. */
export function jobStateName(state: JobState): string {
  return (JobState[state] ?? "unspecified").toLowerCase();
}

/** Checks a job id given on the command line. */
export function checkedJobId(jobId: string): string {
  return usageChecked(() => validateJobId(jobId, "JOB_ID"));
}
