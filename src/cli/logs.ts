/**
 * `airunner logs JOB_ID`: a job's output, stdout to stdout and stderr to
 * stderr, byte for byte, with a line on stderr between two attempts of a
 * retried job. Without -f it prints what is stored now and exits at once,
 * however fast the job keeps printing; `-f` follows it until the job ends
 * and exits with the job's exit code. `--attempt N` prints one attempt's
 * output alone; `--json` prints one JSON object per event line. Several ids,
 * or `--metadata`/`--queue`, read many jobs at once (logs_many.ts).
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import type { Job, JobAttempt, JobEvent } from "../../gen/job/v1/job_pb.ts";
import { EventType } from "../../gen/job/v1/job_lite.ts";
import type { CliClients } from "../client/json_client.ts";
import { replayStored } from "../client/follow.ts";
import { eventTimestampMs, lastSequenceOf } from "../protocol/event_position.ts";
import { isFinished } from "../protocol/job_state.ts";
import { clientsFrom, type ExitCodeSink } from "./common_options.ts";
import { caCertOption, callTimeoutOption, serverOption, tokenOption } from "./commander_options.ts";
import { reportError } from "./errors.ts";
import { EventJsonEncoder, JSON_EVENT_TYPES } from "./event_json.ts";
import { EXIT_CODES_HELP, ExitCode, exitCodeOfJob } from "./exit_codes.ts";
import { followJobToOutcome, type FollowStep } from "./follow_job.ts";
import { outputChunks } from "./job_format.ts";
import { logsOfMany, OUTPUT_TYPES, selectJobs, selectsByQuery } from "./logs_many.ts";
import { parsePrefix } from "./multi_follow.ts";
import { checkedJobId, parseKeyValues, UsageError } from "./parse.ts";
import { writeAll, writeOutput } from "./output.ts";
import { parseDurationMs, parseInteger } from "./parse.ts";

/** Builds the `logs` command. */
export function logsCommand(setExitCode: ExitCodeSink) {
  return new Command("logs")
    .description("print a job's output (-f: follow it until the job ends, then exit with its code)")
    .argument("[job-id...]", "ids of the jobs (or select them with --metadata or --queue)")
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caCertOption())
    .addOption(callTimeoutOption())
    .option("-f, --follow", "follow the output until the job ends", false)
    .option(
      "--attempt <n>",
      "only attempt N's output (1 is the first; `get` lists them); with -f, follow it while it runs",
    )
    .option("--from-sequence <n>", "start at this event sequence", "0")
    .option("--since <duration>", "only output from the last DURATION (e.g. 10m)")
    .option("--json", "one JSON object per line: each output chunk and lifecycle event", false)
    .option(
      "--metadata <KEY=VALUE>",
      "the jobs whose metadata has this pair, as they are now (repeatable: every pair)",
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option("--queue <name>", "the jobs of this queue, as they are now")
    .option(
      "--prefix <how>",
      "before each line of many jobs: id (their default), none, or a metadata KEY (its value)",
    )
    .addHelpText(
      "after",
      `
Examples:
  airunner logs "$id" > build.log 2> build.err
  airunner logs -f "$id"
  airunner logs --attempt 2 "$id"      # the second attempt's output alone
  airunner logs -f --attempt 3 "$id"   # follow attempt 3 (running) until it ends
  airunner logs --json "$id" | jq -r 'select(.type == "output") | .text'
  airunner logs -f "$a" "$b" "$c"      # all three, each line prefixed with its job
  airunner logs -f --metadata run=nightly --prefix shard

Without -f, logs prints what is stored when it starts and exits, even while
the job runs and prints. Between two attempts of a retried job, a line such as
  airunner: attempt 2 of 4 after exit 1, in 8 s
goes to stderr (not with --attempt, which prints one attempt's output alone).
With -f --attempt N, an attempt that has ended is printed, not followed; the
exit code is then that attempt's (its command's code, 124 after a timeout,
1 for a lost worker), or the job's when the attempt was the job's last.

Many jobs (several ids, --metadata or --queue: the jobs that exist when logs
starts, at most 1000): each line is whole and starts with the job's short id
("3f9a2c1d | ..."), stdout to stdout and stderr to stderr; with -f, logs
exits once every job has ended, with the highest of their exit codes.
--json lines carry jobId, sequence, timestamp and type; output lines add
stream and text (with --attempt: output lines only).

${EXIT_CODES_HELP}`,
    )
    .action(async (jobIds, opts) => {
      try {
        const ids = jobIds.map(checkedJobId);
        const fromSequence = BigInt(
          parseInteger(opts.fromSequence, "--from-sequence", 0, Number.MAX_SAFE_INTEGER),
        );
        const attempt = opts.attempt === undefined
          ? undefined
          : parseInteger(opts.attempt, "--attempt", 1, 1_000_000);
        const fromTimestampMs = opts.since === undefined
          ? 0
          : Date.now() - parseDurationMs(opts.since, "--since");
        const selection = {
          ids,
          metadata: parseKeyValues(opts.metadata, "--metadata"),
          queue: opts.queue ?? "",
        };
        const prefix = opts.prefix === undefined ? undefined : parsePrefix(opts.prefix);
        const clients = await clientsFrom({ ...opts, callTimeout: opts.timeout });
        if (ids.length !== 1 || selectsByQuery(selection) || (prefix && prefix.kind !== "none")) {
          if (attempt !== undefined) throw new UsageError("--attempt reads one job: give one id");
          if (fromSequence > 0n) throw new UsageError("--from-sequence reads one job: give one id");
          const jobs = await selectJobs(clients, selection);
          setExitCode(
            await logsOfMany(clients, jobs, {
              follow: opts.follow,
              json: opts.json,
              prefix: prefix ?? { kind: "id" },
              fromTimestampMs,
            }),
          );
          return;
        }
        setExitCode(
          await logsOfOne(clients, ids[0]!, {
            fromSequence,
            fromTimestampMs,
            attempt,
            follow: opts.follow,
            json: opts.json,
          }),
        );
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}

/** `logs` of one job: an attempt's output, the job's followed, or what is stored now. */
async function logsOfOne(
  clients: CliClients,
  id: string,
  options: {
    readonly fromSequence: bigint;
    readonly fromTimestampMs: number;
    readonly attempt: number | undefined;
    readonly follow: boolean;
    readonly json: boolean;
  },
): Promise<number> {
  const { fromSequence, fromTimestampMs, attempt } = options;
  const write = options.json ? jsonWriter(id) : (e: JobEvent) => writeOutput(e);
  if (attempt !== undefined) {
    return await printAttempt(clients, id, attempt, {
      fromSequence,
      fromTimestampMs,
      follow: options.follow,
      write,
    });
  }
  if (options.follow) {
    const outcome = await followJobToOutcome(clients, id, {
      fromSequence,
      fromTimestampMs,
      eventTypes: options.json ? JSON_EVENT_TYPES : OUTPUT_TYPES,
      onEvent: write,
      explainFailure: true,
    });
    return outcome.exitCode;
  }
  const types = new Set<EventType>(options.json ? JSON_EVENT_TYPES : OUTPUT_TYPES);
  await replayStored(clients, id, {
    fromSequence,
    onEvent: async (e) => {
      if (types.has(e.eventType) && since(e, fromTimestampMs)) await write(e);
    },
  });
  return 0;
}

/** Whether `event` is at or after `fromTimestampMs` (0: any time). */
function since(event: JobEvent, fromTimestampMs: number): boolean {
  return fromTimestampMs <= 0 || eventTimestampMs(event, 0) >= fromTimestampMs;
}

/** Writes a job's events as JSON lines on stdout (event_json.ts). */
function jsonWriter(jobId: string): (event: JobEvent) => Promise<void> {
  const encoder = new EventJsonEncoder(jobId);
  const bytes = new TextEncoder();
  return async (event) => {
    const text = encoder.text(event);
    if (text !== "") await writeAll(Deno.stdout, bytes.encode(text));
  };
}

/** The events `logs --attempt` reads: those, and process starts (an attempt that was handed back writes no notice). */
const ATTEMPT_TYPES = [...OUTPUT_TYPES, EventType.PROCESS_START];

/** Where one attempt's events are in its job's log. */
export interface AttemptSpan {
  readonly number: number;
  /** Its first event's sequence (for a running attempt without events yet: where they will come). */
  readonly fromSequence: bigint;
  /** Its last event's sequence; undefined while it runs. */
  readonly lastSequence: bigint | undefined;
}

/**
 * Where attempt `n` of `job` has its events; undefined when it ended with
 * none. An `n` the job has no attempt for is a usage error.
 */
export function attemptSpan(job: Job, n: number): AttemptSpan | undefined {
  // By number, not position: the list can have gaps (attempts from before
  // an upgrade, or middle ones dropped by the history's bound).
  const attempt = attemptNumbered(job, n);
  if (attempt === undefined) {
    const numbers = job.attempts.map((a) => a.number);
    throw new UsageError(
      `--attempt: job ${job.jobId} has ${
        numbers.length === 0
          ? "no attempts yet"
          : `no attempt ${n} (it has ${numberRanges(numbers)})`
      }`,
    );
  }
  const open = attempt.endedAt === undefined && attempt.outcome === "";
  if (!open) {
    if (attempt.lastSequence <= 0n) return undefined;
    return { number: n, fromSequence: attempt.firstSequence, lastSequence: attempt.lastSequence };
  }
  // Its events, when it has none yet, come after every earlier attempt's (and their notices).
  const before = job.attempts.filter((a) => a.number < n).reduce(
    (max, a) => a.lastSequence > max ? a.lastSequence : max,
    0n,
  );
  return {
    number: n,
    fromSequence: attempt.firstSequence > 0n ? attempt.firstSequence : before + 1n,
    lastSequence: undefined,
  };
}

/** What to do with one event read for `logs --attempt`. */
export interface GateStep {
  /** Print its output. */
  readonly print: boolean;
  /** Read no further. */
  readonly stop: boolean;
}

/**
 * Decides, event by event, what of a stream starting at `span.fromSequence`
 * belongs to the attempt: events up to its last sequence; for a running
 * attempt, events until its ATTEMPT_END notice, or until a second process
 * starts (a hand-back writes no notice). Notices of earlier attempts are
 * skipped.
 */
export function attemptGate(span: AttemptSpan): (event: JobEvent) => GateStep {
  let started = false;
  return (event) => {
    if (span.lastSequence !== undefined && event.sequence > span.lastSequence) {
      return { print: false, stop: true };
    }
    const data = event.eventData;
    if (data.case === "attemptEnd") {
      return { print: false, stop: data.value.attempt >= span.number };
    }
    if (data.case === "processStart") {
      if (started) return { print: false, stop: true };
      started = true;
    }
    const last = span.lastSequence !== undefined && lastSequenceOf(event) >= span.lastSequence;
    return { print: outputChunks(event).length > 0, stop: last };
  };
}

/**
 * The exit code of `logs -f --attempt n` once attempt `n` has ended: the
 * job's when it was the job's last and the job is finished, otherwise the
 * attempt's own (its command's code, 124 after a timeout, 130 cancelled,
 * 1 for a lost or handed-back worker).
 */
export function attemptExitCode(job: Job, n: number): number {
  if (isFinished(job.state) && n === job.attempt) return exitCodeOfJob(job);
  const attempt = attemptNumbered(job, n);
  switch (attempt?.outcome) {
    case "completed":
      return ExitCode.Ok;
    case "failed": {
      const code = attempt.exitCode;
      return code >= 1 && code <= 255 ? code : ExitCode.Error;
    }
    case "timed_out":
      return ExitCode.JobTimedOut;
    case "cancelled":
      return ExitCode.JobCancelled;
    default:
      return ExitCode.Error;
  }
}

/** Prints attempt `n`'s output; returns the exit code (0 without -f). */
async function printAttempt(
  clients: CliClients,
  jobId: string,
  n: number,
  options: {
    fromSequence: bigint;
    fromTimestampMs: number;
    follow: boolean;
    write: (event: JobEvent) => Promise<void>;
  },
): Promise<number> {
  const { job } = await clients.jobs.getJob({ jobId });
  if (job === undefined) throw new Error("the server returned no job");
  const span = attemptSpan(job, n);
  const exitCode = async () => {
    if (!options.follow) return 0;
    const { job: now } = await clients.jobs.getJob({ jobId });
    return now === undefined ? ExitCode.Error : attemptExitCode(now, n);
  };
  if (span === undefined) return await exitCode();
  const gate = attemptGate(span);
  const onEvent = async (event: JobEvent): Promise<FollowStep> => {
    const step = gate(event);
    if (step.print) await options.write(event);
    return step.stop ? "stop" : undefined;
  };
  const fromSequence = options.fromSequence > span.fromSequence
    ? options.fromSequence
    : span.fromSequence;
  if (options.follow && span.lastSequence === undefined) {
    const outcome = await followJobToOutcome(clients, jobId, {
      fromSequence,
      fromTimestampMs: options.fromTimestampMs,
      eventTypes: ATTEMPT_TYPES,
      onEvent,
      explainFailure: true,
      jobKnownToExist: true,
    });
    return outcome.stopped ? await exitCode() : outcome.exitCode;
  }
  const types = new Set<EventType>(ATTEMPT_TYPES);
  await replayStored(clients, jobId, {
    job,
    fromSequence,
    onEvent: (e) =>
      types.has(e.eventType) && since(e, options.fromTimestampMs) ? onEvent(e) : undefined,
  });
  return await exitCode();
}

function attemptNumbered(job: Job, n: number): JobAttempt | undefined {
  return job.attempts.find((a) => a.number === n);
}

/** Ascending numbers as ranges: "1-3, 7, 9-10". */
function numberRanges(numbers: readonly number[]): string {
  const ranges: string[] = [];
  for (let i = 0; i < numbers.length;) {
    let j = i;
    while (j + 1 < numbers.length && numbers[j + 1] === numbers[j]! + 1) j++;
    ranges.push(i === j ? `${numbers[i]}` : `${numbers[i]}-${numbers[j]}`);
    i = j + 1;
  }
  return `attempt${numbers.length === 1 ? "" : "s"} ${ranges.join(", ")}`;
}
