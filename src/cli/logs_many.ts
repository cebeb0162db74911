/**
 * `airunner logs [-f] ID ID ... | --metadata K=V | --queue Q`: the output
 * of many jobs at once, each line whole and prefixed with its job
 * (multi_follow.ts), stdout to stdout and stderr to stderr; with -f until
 * every job has ended, exiting with the worst exit code. The jobs of
 * `--metadata`/`--queue` are those that exist when the command starts.
 *
 * @module
 */
import type { Job, JobEvent } from "../../gen/job/v1/job_pb.ts";
import { EventType, JobState, StreamType } from "../../gen/job/v1/job_lite.ts";
import { followJob, replayStored } from "../client/follow.ts";
import type { CliJobClients } from "../client/json_client.ts";
import { eventTimestampMs } from "../protocol/event_position.ts";
import { rpcErrorOf } from "../rpc_error.ts";
import { attemptSeparator } from "./attempt_format.ts";
import { EventJsonEncoder, JSON_EVENT_TYPES } from "./event_json.ts";
import { ExitCode, exitCodeOfJob } from "./exit_codes.ts";
import { failureLine } from "./follow_job.ts";
import { outputChunks } from "./job_format.ts";
import {
  type OutputStream,
  PrefixedOutput,
  prefixLabels,
  type PrefixMode,
  worstExitCode,
} from "./multi_follow.ts";
import { writeAll } from "./output.ts";
import { UsageError } from "./parse.ts";
import { colourEnabled, stderrIsTerminal, stdoutIsTerminal } from "./terminal.ts";

/** The most jobs one command follows (each holds a stream to the server). */
export const MAX_FOLLOWED_JOBS = 1000;

/** The events the text output reads: output, and the notices between attempts. */
export const OUTPUT_TYPES: readonly EventType[] = [
  EventType.OUTPUT_BATCH,
  EventType.OUTPUT,
  EventType.ATTEMPT_END,
];

/** GetJob calls in flight at once while the named jobs are read. */
const PARALLEL_GETS = 16;

/** Which jobs: the ids named, or those `--metadata`/`--queue` select. */
export interface JobSelection {
  readonly ids: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  /** "" for every queue. */
  readonly queue: string;
}

/** Whether `selection` names its jobs by `--metadata`/`--queue` rather than by id. */
export function selectsByQuery(selection: JobSelection): boolean {
  return selection.queue !== "" || Object.keys(selection.metadata).length > 0;
}

/**
 * The jobs of `selection` as they are now: the named ones in the order
 * given (each once), or those of the query, oldest first. A usage error
 * when it names none, both ids and a query, or more than
 * {@link MAX_FOLLOWED_JOBS}.
 */
export async function selectJobs(clients: CliJobClients, selection: JobSelection): Promise<Job[]> {
  const query = selectsByQuery(selection);
  if (query && selection.ids.length > 0) {
    throw new UsageError("give job ids or --metadata/--queue, not both");
  }
  if (!query) {
    const ids = [...new Set(selection.ids)];
    if (ids.length === 0) throw new UsageError("give a job id, or --metadata K=V or --queue Q");
    if (ids.length > MAX_FOLLOWED_JOBS) throw tooMany(`${ids.length} job ids`);
    return await mapInTurns(ids, PARALLEL_GETS, async (jobId) => {
      const { job } = await clients.jobs.getJob({ jobId });
      if (job === undefined) throw new Error("the server returned no job");
      return job;
    });
  }
  const found = new Map<string, Job>();
  for (let page = 1, lastPage = 1; page <= lastPage; page++) {
    const res = await clients.jobs.listJobs({
      queue: selection.queue,
      state: JobState.UNSPECIFIED,
      page,
      pageSize: MAX_FOLLOWED_JOBS,
      metadata: { ...selection.metadata },
    });
    // Jobs submitted meanwhile shift the pages: a job seen twice counts once.
    for (const job of res.jobs) found.set(job.jobId, job);
    if (found.size > MAX_FOLLOWED_JOBS) throw tooMany("more than that many jobs");
    lastPage = res.lastPage;
  }
  const what = [
    ...Object.entries(selection.metadata).map(([k, v]) => `--metadata ${k}=${v}`),
    ...(selection.queue === "" ? [] : [`--queue ${selection.queue}`]),
  ].join(" ");
  if (found.size === 0) throw new UsageError(`no job matches ${what}`);
  return [...found.values()].reverse();
}

function tooMany(what: string): UsageError {
  return new UsageError(
    `at most ${MAX_FOLLOWED_JOBS} jobs at once; this names ${what} (narrow it with --metadata)`,
  );
}

/** What {@link logsOfMany} prints. */
export interface ManyLogsOptions {
  /** Follow until every job has ended (else: what is stored now). */
  readonly follow: boolean;
  readonly json: boolean;
  readonly prefix: PrefixMode;
  /** Only output from this Unix ms on (0: all). */
  readonly fromTimestampMs: number;
}

/** Prints the output of `jobs`; returns the exit code (with follow, the worst of the jobs'). */
export async function logsOfMany(
  clients: CliJobClients,
  jobs: readonly Job[],
  options: ManyLogsOptions,
): Promise<number> {
  const sink = new ManySink(jobs, options);
  if (!options.follow) {
    for (const job of jobs) {
      await replayStored(clients, job.jobId, { onEvent: (e) => sink.event(job.jobId, e) });
      await sink.end(job.jobId, undefined);
    }
    return ExitCode.Ok;
  }
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSigint);
  let lastNotice = 0;
  try {
    const codes = await Promise.all(jobs.map(async (job) => {
      const done = await followJob(clients, job.jobId, {
        fromTimestampMs: options.fromTimestampMs,
        eventTypes: options.json ? JSON_EVENT_TYPES : OUTPUT_TYPES,
        onEvent: (e) => sink.event(job.jobId, e),
        signal: stop.signal,
        jobKnownToExist: true,
        onReconnect: (error) => {
          // One notice per outage, not one per job.
          if (Date.now() - lastNotice < 10_000) return;
          lastNotice = Date.now();
          console.error(`airunner: lost the server (${error.rawMessage}); reconnecting...`);
        },
      });
      await sink.end(job.jobId, done);
      return exitCodeOfJob(done);
    }));
    return worstExitCode(codes);
  } catch (error) {
    const interrupted = stop.signal.aborted;
    stop.abort();
    if (!interrupted || rpcErrorOf(error) === undefined) throw error;
    for (const job of jobs) await sink.end(job.jobId, undefined);
    console.error(
      `\nairunner: stopped following ${
        jobs.length === 1 ? "1 job; it keeps" : `${jobs.length} jobs; they keep`
      } running (follow again: airunner logs -f ID...)`,
    );
    return ExitCode.JobCancelled;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

/** Where the events of many jobs go: prefixed lines or JSON lines, one write at a time per stream. */
class ManySink {
  readonly #options: ManyLogsOptions;
  readonly #lines: PrefixedOutput;
  readonly #json = new Map<string, EventJsonEncoder>();
  readonly #types: ReadonlySet<EventType>;
  readonly #ended = new Set<string>();
  #stdout: Promise<void> = Promise.resolve();
  #stderr: Promise<void> = Promise.resolve();

  constructor(jobs: readonly Job[], options: ManyLogsOptions) {
    this.#options = options;
    const colour = colourEnabled();
    this.#lines = new PrefixedOutput(
      prefixLabels(
        jobs.map((j) => ({ jobId: j.jobId, metadata: j.jobParams?.metadata ?? {} })),
        options.prefix,
      ),
      { stdout: colour && stdoutIsTerminal(), stderr: colour && stderrIsTerminal() },
    );
    this.#types = new Set(options.json ? JSON_EVENT_TYPES : OUTPUT_TYPES);
  }

  /** Prints one event of `jobId` (a replay's events of every type come here: filtered). */
  async event(jobId: string, event: JobEvent): Promise<void> {
    if (!this.#types.has(event.eventType)) return;
    const from = this.#options.fromTimestampMs;
    if (from > 0 && eventTimestampMs(event, 0) < from) return;
    if (this.#options.json) {
      let encoder = this.#json.get(jobId);
      if (encoder === undefined) this.#json.set(jobId, encoder = new EventJsonEncoder(jobId));
      const text = encoder.text(event);
      if (text !== "") await this.#write("stdout", new TextEncoder().encode(text));
      return;
    }
    const separator = attemptSeparator(event);
    if (separator !== undefined) {
      await this.#flush(jobId);
      await this.#write("stderr", this.#lines.line(jobId, "stderr", separator));
      return;
    }
    for (const { stream, bytes } of outputChunks(event)) {
      const to: OutputStream = stream === StreamType.STDERR ? "stderr" : "stdout";
      const lines = this.#lines.chunk(jobId, to, bytes);
      if (lines !== undefined) await this.#write(to, lines);
    }
  }

  /** A job has ended (`job`: as it ended; undefined: no longer read): its last lines, and why it failed. */
  async end(jobId: string, job: Job | undefined): Promise<void> {
    if (this.#ended.has(jobId)) return;
    this.#ended.add(jobId);
    await this.#flush(jobId);
    const why = job === undefined ? undefined : failureLine(job);
    if (why !== undefined) await this.#write("stderr", new TextEncoder().encode(`${why}\n`));
  }

  async #flush(jobId: string): Promise<void> {
    const rest = this.#lines.flush(jobId);
    if (rest.stdout !== undefined) await this.#write("stdout", rest.stdout);
    if (rest.stderr !== undefined) await this.#write("stderr", rest.stderr);
  }

  /** Writes `bytes` after every earlier write to the same stream, so no two overlap. */
  #write(to: OutputStream, bytes: Uint8Array): Promise<void> {
    const out = to === "stdout" ? Deno.stdout : Deno.stderr;
    const next = (to === "stdout" ? this.#stdout : this.#stderr).then(() => writeAll(out, bytes));
    if (to === "stdout") this.#stdout = next.catch(() => {});
    else this.#stderr = next.catch(() => {});
    return next;
  }
}

/** `fn` of every item, at most `limit` at a time; results in the items' order. */
async function mapInTurns<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
