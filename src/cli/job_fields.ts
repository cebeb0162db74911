/**
 * What a job file and a `submit --batch` line may say, and the checks of
 * those keys and of `--timeout` and env files: everything of job files but
 * YAML, so `submit` loads the YAML parser only when it reads a job file
 * (it costs some 50 ms of start-up). job_file.ts re-exports all of it.
 *
 * @module
 */
import { jobIdsField } from "./dependency_flags.ts";
import { MAX_TIMEOUT_SECONDS } from "../protocol/limits.ts";
import { parseDurationMs, UsageError } from "./parse.ts";
import type { ExitCodeRange } from "../../gen/job/v1/job_pb.ts";
import { parseRetries, parseRetryDelay, parseRetryOn, type RetryDelay } from "./retry_flags.ts";
import {
  parsePriority,
  parseRunAt,
  parseStartDelay,
  type StartTime,
  startTimeOf,
} from "./start_flags.ts";

/** What a job file may say. */
export interface JobFile {
  command?: string;
  args?: string[];
  environment?: Record<string, string>;
  /** `secret_env` in the file. */
  secretEnvironment?: Record<string, string>;
  metadata?: Record<string, string>;
  owner?: string;
  repository?: string;
  commit?: string;
  branch?: string;
  workingDirectory?: string;
  processType?: "pipe" | "pty";
  timeoutSeconds?: number;
  queue?: string;
  /** Retries after the first attempt (`retries`). */
  retries?: number;
  /** Exit codes that retry (`retryOn`: "1,2,75-78" or a list). */
  retryOn?: ExitCodeRange[];
  /** `retryDelay`: "5s..10m", or one duration (the first wait). */
  retryDelay?: RetryDelay;
  /** `retryOnTimeout` (default true). */
  retryOnTimeout?: boolean;
  /** `delay: 10m` or `at: 2026-12-24T09:00:00Z` (one of them). */
  start?: StartTime;
  /** `priority`: -100..100, higher first. */
  priority?: number;
  /** `after`: job ids that must complete first. */
  after?: string[];
  /** `afterAny`: job ids that must end first, whatever their outcome. */
  afterAny?: string[];
}

const STRING_KEYS = [
  "command",
  "owner",
  "repository",
  "commit",
  "branch",
  "workingDirectory",
  "queue",
] as const;
const KNOWN_KEYS = [
  ...STRING_KEYS,
  "args",
  "environment",
  "secret_env",
  "metadata",
  "processType",
  "timeout",
  "retries",
  "retryOn",
  "retryDelay",
  "retryOnTimeout",
  "delay",
  "at",
  "priority",
  "after",
  "afterAny",
];

/**
 * Checks a parsed job file (or one line of a `submit --batch` file): the
 * keys a job file knows, plus `extraKeys`, which the caller reads itself.
 * A mistake is a usage error that starts with `where` (`--config job.yaml`,
 * `line 7`) and names the key.
 */
export function checkJobFields(
  value: unknown,
  where: string,
  extraKeys: readonly string[] = [],
): JobFile {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError(`${where}: must be a mapping of keys such as command and args`);
  }
  const fields = value as Record<string, unknown>;
  const fail = (key: string, problem: string): never => {
    throw new UsageError(`${where}: ${key} ${problem}`);
  };
  const known = [...KNOWN_KEYS, ...extraKeys];
  for (const key of Object.keys(fields)) {
    if (!known.includes(key)) {
      fail(`key "${key}"`, `is unknown (known keys: ${known.join(", ")})`);
    }
  }
  const file: JobFile = {};
  for (const key of STRING_KEYS) {
    const v = fields[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") fail(key, "must be a string");
    file[key] = v as string;
  }
  if (fields.args !== undefined && fields.args !== null) {
    if (!Array.isArray(fields.args)) fail("args", "must be a list");
    file.args = (fields.args as unknown[]).map((a, i) =>
      typeof a === "string" || typeof a === "number"
        ? String(a)
        : fail(`args[${i}]`, "must be a string")
    );
  }
  for (
    const [key, into] of [
      ["environment", "environment"],
      ["secret_env", "secretEnvironment"],
      ["metadata", "metadata"],
    ] as const
  ) {
    const v = fields[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== "object" || Array.isArray(v)) {
      fail(key, "must be a mapping of names to values");
    }
    file[into] = Object.fromEntries(
      Object.entries(v as Record<string, unknown>).map(([k, x]) => [
        k,
        typeof x === "string" || typeof x === "number" || typeof x === "boolean"
          ? String(x)
          : fail(`${key}.${k}`, "must be a string"),
      ]),
    );
  }
  if (fields.processType !== undefined && fields.processType !== null) {
    file.processType = parseProcessType(String(fields.processType), `${where}: processType`);
  }
  if (fields.timeout !== undefined && fields.timeout !== null) {
    const t = fields.timeout;
    const seconds = typeof t === "number"
      ? t
      : parseDurationMs(String(t), `${where}: timeout`) / 1000;
    if (!Number.isInteger(seconds) || seconds < 0) {
      fail("timeout", "must be whole seconds, 0 or more");
    }
    file.timeoutSeconds = seconds;
  }
  readRetryFields(fields, where, file);
  readStartFields(fields, where, file);
  for (const key of ["after", "afterAny"] as const) {
    const v = fields[key];
    if (v !== undefined && v !== null) file[key] = jobIdsField(v, `${where}: ${key}`);
  }
  return file;
}

/** What each start key takes, for the error of a value of the wrong kind. */
const EXPECTED: Readonly<Record<string, string>> = {
  delay: "a duration such as 10m (or a number of seconds)",
  at: "an RFC 3339 time such as 2026-12-24T09:00:00Z",
  priority: "a whole number from -100 to 100",
};

/** Reads `delay`, `at` and `priority` into `file`, each checked and named. */
function readStartFields(fields: Record<string, unknown>, where: string, file: JobFile): void {
  const text = (key: string): string | undefined => {
    const v = fields[key];
    if (v === undefined || v === null) return undefined;
    // YAML reads an unquoted 2026-12-24T09:00:00Z as a Date.
    if (v instanceof Date) return v.toISOString();
    if (typeof v !== "string" && typeof v !== "number") {
      throw new UsageError(`${where}: ${key} must be ${EXPECTED[key] ?? "a string"}`);
    }
    return String(v);
  };
  const delay = text("delay");
  const at = text("at");
  const start = startTimeOf(
    delay === undefined ? undefined : parseStartDelay(delay, `${where}: delay`),
    at === undefined ? undefined : parseRunAt(at, `${where}: at`),
    { delay: `${where}: delay`, at: "at" },
  );
  if (start !== undefined) file.start = start;
  const priority = text("priority");
  if (priority !== undefined) file.priority = parsePriority(priority, `${where}: priority`);
}

/** Reads the retry keys of a job file or batch line into `file`, each checked and named. */
function readRetryFields(fields: Record<string, unknown>, where: string, file: JobFile): void {
  const given = (key: string) => fields[key] !== undefined && fields[key] !== null;
  if (given("retries")) {
    const v = fields.retries;
    if (typeof v !== "number" && typeof v !== "string") {
      throw new UsageError(`${where}: retries must be a whole number`);
    }
    file.retries = parseRetries(v, `${where}: retries`);
  }
  if (given("retryOn")) {
    const v = fields.retryOn;
    const list = Array.isArray(v) &&
      v.every((x) => typeof x === "number" || typeof x === "string");
    if (typeof v !== "string" && typeof v !== "number" && !list) {
      throw new UsageError(
        `${where}: retryOn must be exit codes and ranges, such as "1,2,75-78" or [1, 2, "75-78"]`,
      );
    }
    file.retryOn = parseRetryOn(
      typeof v === "number" ? String(v) : v as string | (string | number)[],
      `${where}: retryOn`,
    );
  }
  if (given("retryDelay")) {
    const v = fields.retryDelay;
    if (typeof v !== "number" && typeof v !== "string") {
      throw new UsageError(`${where}: retryDelay must be a delay such as "5s" or "5s..10m"`);
    }
    file.retryDelay = parseRetryDelay(String(v), `${where}: retryDelay`);
  }
  if (given("retryOnTimeout")) {
    if (typeof fields.retryOnTimeout !== "boolean") {
      throw new UsageError(`${where}: retryOnTimeout must be true or false`);
    }
    file.retryOnTimeout = fields.retryOnTimeout;
  }
}

/** Parses `submit --timeout` (a duration in whole seconds, 0: no limit) into seconds. */
export function parseTimeoutFlag(value: string): number {
  const ms = parseDurationMs(value, "--timeout");
  if (ms % 1000 !== 0) throw new UsageError("--timeout: must be whole seconds");
  return checkTimeoutSeconds(ms / 1000, "--timeout");
}

/** Refuses a job timeout above the server's limit, naming `where`. */
export function checkTimeoutSeconds(seconds: number, where: string): number {
  if (seconds > MAX_TIMEOUT_SECONDS) {
    throw new UsageError(
      `${where}: must be at most ${MAX_TIMEOUT_SECONDS / 86_400} days (0 means no limit)`,
    );
  }
  return seconds;
}

/** Parses `pipe` or `pty` (any case, with or without the PROCESS_TYPE_ prefix). */
export function parseProcessType(value: string, where: string): "pipe" | "pty" {
  const name = value.trim().toLowerCase().replace(/^process_type_/, "");
  if (name === "pipe" || name === "pty") return name;
  throw new UsageError(`${where}: "${value}" is not pipe or pty`);
}

/**
 * Parses an env file: KEY=VALUE lines; blank lines and # comments are
 * skipped, an `export ` prefix is allowed, and a value may be quoted.
 */
export function parseEnvFile(text: string, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim().replace(/^export\s+/, "");
    if (line === "" || line.startsWith("#")) return;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new UsageError(`--env-file ${name}: line ${i + 1} is not KEY=VALUE`);
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replaceAll("\\n", "\n").replaceAll('\\"', '"');
    }
    out[key] = value;
  });
  return out;
}
