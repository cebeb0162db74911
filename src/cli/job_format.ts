/**
 * How jobs and events look on a terminal and in JSON (pure).
 *
 * @module
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { EventType, type Job, type JobEvent, StreamType } from "../../gen/job/v1/job_pb.ts";
import { isFinished } from "../store/job_state.ts";
import { jobStateName } from "./parse.ts";

/** The JSON shape of one job in `list --json`. */
export interface JobSummary {
  readonly id: string;
  readonly queue: string;
  readonly state: string;
  readonly command: string;
  readonly created: string | null;
  /** null until the job has finished. */
  readonly exitCode: number | null;
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
    created: job.createdAt === undefined ? null : timestampDate(job.createdAt).toISOString(),
    exitCode: isFinished(job.state) && job.result !== undefined ? job.result.exitCode : null,
  };
}

const MAX_COMMAND_COLUMN = 40;

/** A table of jobs with a header row, columns padded to fit. */
export function formatJobTable(jobs: readonly Job[]): string {
  const rows = [["ID", "QUEUE", "STATE", "COMMAND", "CREATED", "EXIT"]];
  for (const job of jobs) {
    const s = summarizeJob(job);
    rows.push([
      s.id,
      s.queue,
      s.state,
      shorten(s.command, MAX_COMMAND_COLUMN),
      s.created === null ? "-" : s.created.replace("T", " ").replace(/\.\d+Z$/, "Z"),
      s.exitCode === null ? "-" : String(s.exitCode),
    ]);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd())
    .join("\n");
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
    case "output":
    case "outputBatch":
      return undefined;
    default:
      return head;
  }
}

/** The output chunks an event carries, with the stream each belongs to. */
export function outputChunks(event: JobEvent): { stream: StreamType; bytes: Uint8Array }[] {
  const data = event.eventData;
  if (data.case === "outputBatch") {
    return data.value.outputs.map((o) => ({ stream: o.streamType, bytes: o.output }));
  }
  if (data.case === "output") return [{ stream: StreamType.STDOUT, bytes: data.value.output }];
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
