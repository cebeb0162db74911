/**
 * How jobs and events look on a terminal and in JSON (pure: the current
 * time is an argument).
 *
 * @module
 */
import type { Job, JobEvent } from "../../gen/job/v1/job_pb.ts";
import { EventType, JobState, ProcessType, StreamType } from "../../gen/job/v1/job_lite.ts";
import { isFinished } from "../protocol/job_state.ts";
import { FAILURE_REASON_WORKER_LOST } from "../protocol/attempts.ts";
import {
  attemptEndText,
  type AttemptJson,
  attemptsJson,
  describeAttempt,
  failureReasonText,
  iso,
  millis,
  notBeforeText,
  retryCountdown,
  type RetryJson,
  retryJson,
  retryPolicyLines,
} from "./attempt_format.ts";
import { jobStateName } from "./parse.ts";
import { formatElapsed } from "./terminal.ts";

export { iso, millis };

/** The JSON shape of one job in `list --json`. */
export interface JobSummary {
  readonly id: string;
  readonly queue: string;
  readonly state: string;
  readonly command: string;
  readonly created: string | null;
  /** null until the job has finished. */
  readonly exitCode: number | null;
  readonly attempt: number;
  readonly owner: string;
  readonly repository: string;
  readonly startedAt: string | null;
  readonly completedAt: string | null;
  /** While SCHEDULED for a retry: no attempt starts before this time. */
  readonly notBefore: string | null;
  /** Why a FAILED job failed for good: "exhausted" or "worker_lost"; null otherwise. */
  readonly failureReason: string | null;
  /** -100..100, higher first within the queue. */
  readonly priority: number;
  /** While SCHEDULED: the dependencies that have not ended as needed yet. */
  readonly waitingFor: string[];
}

/** The JSON shape of `get --json`: the summary and everything else about the job. */
export interface JobDetails extends JobSummary {
  readonly args: string[];
  readonly branch: string;
  readonly commit: string;
  readonly workingDirectory: string;
  readonly processType: string;
  readonly timeoutSeconds: number;
  /** Values are "***" unless shown on request. */
  readonly environment: Record<string, string>;
  /** Names of the secret environment; values are always "***". */
  readonly secretEnvironment: Record<string, string>;
  readonly metadata: Record<string, string>;
  readonly updated: string | null;
  readonly error: string | null;
  readonly cancelReason: string | null;
  /** The job this one reruns (`airunner rerun`). */
  readonly rerunOf: string | null;
  /** The delayed start asked for: a wait from the submit (0: none), or a time. */
  readonly delayMs: number;
  readonly runAt: string | null;
  /** Jobs that must complete first (`--after`), and end first whatever the outcome (`--after-any`). */
  readonly after: string[];
  readonly afterAny: string[];
  /** The job's retry policy with the server's defaults filled in; null: it does not retry. */
  readonly retry: RetryJson | null;
  /** Every attempt so far, oldest first; the running one last, with no end. */
  readonly attempts: AttemptJson[];
}

/** The job's command line, arguments quoted where a shell would need it. */
export function commandLine(job: Job): string {
  const params = job.jobParams;
  if (params === undefined) return "";
  return [params.command, ...params.args].map(shellQuote).join(" ");
}

/** The summary of `job` for JSON output. */
export function summarizeJob(job: Job): JobSummary {
  return {
    id: job.jobId,
    queue: job.queue,
    state: jobStateName(job.state),
    command: commandLine(job),
    created: iso(job.createdAt),
    // A job whose workers were lost never exited, and one cancelled before
    // any attempt never ran: their result's 0 is no exit code.
    exitCode: isFinished(job.state) && job.result !== undefined &&
        job.failureReason !== FAILURE_REASON_WORKER_LOST && job.attempt > 0
      ? job.result.exitCode
      : null,
    attempt: job.attempt,
    owner: job.jobParams?.owner ?? "",
    repository: job.jobParams?.repository ?? "",
    startedAt: iso(job.result?.startedAt),
    completedAt: iso(job.result?.completedAt),
    notBefore: iso(job.notBefore),
    failureReason: job.failureReason || null,
    priority: job.jobParams?.priority ?? 0,
    waitingFor: [...(job.waitingFor ?? [])],
  };
}

/**
 * A job's environment: names always, values only when `showEnv` (values
 * often carry credentials, and job listings end up in CI logs).
 */
export function environmentOf(job: Job, showEnv: boolean): Record<string, string> {
  return Object.fromEntries(
    Object.entries(job.jobParams?.environment ?? {}).map(([k, v]) => [k, showEnv ? v : "***"]),
  );
}

/**
 * A job's secret environment: names only, each value "***" whatever the
 * server sent (airunner's server never sends them; `--show-env` does not
 * apply to secrets).
 */
export function secretEnvironmentOf(job: Job): Record<string, string> {
  return Object.fromEntries(
    Object.keys(job.jobParams?.secretEnvironment ?? {}).map((k) => [k, "***"]),
  );
}

/** Everything about `job` for `get --json`; environment values masked unless `showEnv`. */
export function jobDetails(job: Job, showEnv: boolean): JobDetails {
  const p = job.jobParams;
  return {
    ...summarizeJob(job),
    args: p?.args ?? [],
    branch: p?.branch ?? "",
    commit: p?.commit ?? "",
    workingDirectory: p?.workingDirectory ?? "",
    processType: p?.processType === ProcessType.PTY ? "pty" : "pipe",
    timeoutSeconds: p?.timeoutSeconds ?? 0,
    environment: environmentOf(job, showEnv),
    secretEnvironment: secretEnvironmentOf(job),
    metadata: { ...p?.metadata },
    updated: iso(job.updatedAt),
    error: job.result?.errorMessage || null,
    cancelReason: job.cancelReason || null,
    rerunOf: p?.rerunOf || null,
    delayMs: Number(p?.delayMs ?? 0n),
    runAt: iso(p?.runAt),
    after: [...(p?.after ?? [])],
    afterAny: [...(p?.afterAny ?? [])],
    retry: retryJson(p?.retry),
    attempts: attemptsJson(job.attempts),
  };
}

/** How long the job has run (running) or ran (finished), in ms; undefined before it ran. */
export function runTimeMs(job: Job, nowMs: number): number | undefined {
  const started = millis(job.result?.startedAt);
  const completed = millis(job.result?.completedAt);
  if (started !== undefined && completed !== undefined) return completed - started;
  // A running job's last update is its dequeue (extensions do not touch it).
  if (job.state === JobState.RUNNING) return nowMs - (millis(job.updatedAt) ?? nowMs);
  return undefined;
}

const MAX_COMMAND_COLUMN = 40;

/** A table of jobs with a header row, columns padded to fit; `wide` adds repository, owner, attempt. */
export function formatJobTable(jobs: readonly Job[], nowMs: number, wide = false): string {
  const header = ["ID", "QUEUE", "STATE", "COMMAND", "AGE", "DURATION", "EXIT"];
  const rows = [wide ? [...header, "REPOSITORY", "OWNER", "ATTEMPT"] : header];
  for (const job of jobs) {
    const s = summarizeJob(job);
    const age = millis(job.createdAt);
    const waiting = s.waitingFor.length;
    const countdown = job.state !== JobState.SCHEDULED
      ? undefined
      : waiting > 0
      ? `waiting for ${waiting} job${waiting === 1 ? "" : "s"}`
      : retryCountdown(job.notBefore, nowMs, job.attempt === 0);
    const row = [
      s.id,
      s.queue,
      countdown === undefined ? s.state : `${s.state} (${countdown})`,
      shorten(s.command, MAX_COMMAND_COLUMN),
      age === undefined ? "-" : formatElapsed(nowMs - age),
      formatElapsed(runTimeMs(job, nowMs) ?? Number.NaN),
      s.exitCode === null ? "-" : String(s.exitCode),
    ];
    rows.push(wide ? [...row, s.repository || "-", s.owner || "-", String(s.attempt)] : row);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd())
    .join("\n");
}

/** `get`'s human view: one "name: value" line per fact, then one per attempt. */
export function describeJob(job: Job, nowMs: number, showEnv: boolean): string {
  const d = jobDetails(job, showEnv);
  const lines: [string, string][] = [
    ["id", d.id],
    ["queue", d.queue],
    ["state", d.exitCode === null ? d.state : `${d.state} (exit code ${d.exitCode})`],
    ["command", d.command],
    ["attempt", String(d.attempt)],
    ["owner", d.owner || "-"],
    ["created", d.created ?? "-"],
    ["started", d.startedAt ?? "-"],
    ["completed", d.completedAt ?? "-"],
    ["duration", formatElapsed(runTimeMs(job, nowMs) ?? Number.NaN)],
  ];
  if (job.notBefore !== undefined) {
    // Before the first attempt the wait is a delayed start; after one, a retry's backoff.
    const label = job.attempt === 0 ? "starts" : "next attempt";
    lines.push([label, `not before ${notBeforeText(job.notBefore, nowMs)}`]);
  }
  if (d.priority !== 0) lines.push(["priority", String(d.priority)]);
  if (d.after.length > 0) lines.push(["after", d.after.join(", ")]);
  if (d.afterAny.length > 0) lines.push(["after any", d.afterAny.join(", ")]);
  if (d.waitingFor.length > 0) lines.push(["waiting for", d.waitingFor.join(", ")]);
  if (d.failureReason !== null) lines.push(["failure", failureReasonText(d.failureReason)]);
  if (d.rerunOf !== null) lines.push(["rerun of", d.rerunOf]);
  if (d.repository !== "") {
    lines.push(["repository", d.repository]);
    if (d.branch !== "") lines.push(["branch", d.branch]);
    if (d.commit !== "") lines.push(["commit", d.commit]);
  }
  if (d.workingDirectory !== "") lines.push(["workdir", d.workingDirectory]);
  if (d.processType !== "pipe") lines.push(["process", d.processType]);
  if (d.timeoutSeconds > 0) lines.push(["timeout", `${d.timeoutSeconds}s`]);
  for (const [k, v] of Object.entries(d.environment)) lines.push(["env", `${k}=${v}`]);
  for (const [k, v] of Object.entries(d.secretEnvironment)) lines.push(["secret", `${k}=${v}`]);
  for (const [k, v] of Object.entries(d.metadata)) lines.push(["metadata", `${k}=${v}`]);
  if (d.error !== null) lines.push(["error", d.error]);
  if (d.cancelReason !== null) lines.push(["cancelled", d.cancelReason]);
  lines.push(...retryPolicyLines(job.jobParams?.retry));
  for (const a of job.attempts) lines.push([`attempt ${a.number}`, describeAttempt(a, nowMs)]);
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  return lines.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`).join("\n");
}

/** One line describing a lifecycle event, or undefined for output events. */
export function describeLifecycleEvent(event: JobEvent): string | undefined {
  const head = `[${event.sequence}] ${EventType[event.eventType] ?? event.eventType}`;
  const data = event.eventData;
  switch (data.case) {
    case "processStart":
      return `${head} pid=${data.value.pid}`;
    case "processEnd": {
      const ms = data.value.runDuration === undefined
        ? 0
        : Number(data.value.runDuration.seconds) * 1000 + data.value.runDuration.nanos / 1e6;
      return `${head} pid=${data.value.pid} exit_code=${data.value.exitCode} duration=${
        Math.round(ms)
      }ms`;
    }
    case "processError":
      return `${head} ${data.value.errorMessage}`;
    case "heartbeat":
      return `${head} alive=${data.value.processAlive}`;
    case "terminalResize":
      return `${head} ${data.value.cols}x${data.value.rows}`;
    case "attemptEnd":
      return `${head} ${attemptEndText(data.value, millis(event.timestamp))}`;
    case "output":
    case "outputBatch":
      return undefined;
    default:
      return head;
  }
}

/** The output chunks an event carries, with the stream and the Unix ms each was read. */
export function outputChunks(
  event: JobEvent,
): { stream: StreamType; bytes: Uint8Array; timeMs: number }[] {
  const data = event.eventData;
  const eventMs = millis(event.timestamp) ?? 0;
  if (data.case === "outputBatch") {
    const first = Number(data.value.firstTimestampMs) || eventMs;
    return data.value.outputs.map((o) => ({
      stream: o.streamType,
      bytes: o.output,
      timeMs: first + o.timestampDeltaMs,
    }));
  }
  if (data.case === "output") {
    return [{ stream: StreamType.STDOUT, bytes: data.value.output, timeMs: eventMs }];
  }
  return [];
}

function shorten(text: string, max: number): string {
  const oneLine = text.replace(/\s+/g, " ");
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`;
}

function shellQuote(word: string): string {
  if (word !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
