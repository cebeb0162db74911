/**
 * `airunner logs JOB_ID`: a job's output, stdout to stdout and stderr to
 * stderr, byte for byte, with a line on stderr between two attempts of a
 * retried job. `-f` follows it until the job ends and exits with the job's
 * exit code. `--attempt N` prints one attempt's output alone.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { rpcErrorOf } from "../rpc_error.ts";
import { EventType, type Job, type JobAttempt, type JobEvent } from "../../gen/job/v1/job_pb.ts";
import type { CliClients } from "../client/json_client.ts";
import { lastSequenceOf } from "../protocol/event_position.ts";
import { isFinished } from "../protocol/job_state.ts";
import { clientsFrom, type ExitCodeSink } from "./common_options.ts";
import { caCertOption, callTimeoutOption, serverOption, tokenOption } from "./commander_options.ts";
import { reportError } from "./errors.ts";
import { EXIT_CODES_HELP, ExitCode, exitCodeOfJob } from "./exit_codes.ts";
import { followJobToOutcome, type FollowStep } from "./follow_job.ts";
import { outputChunks } from "./job_format.ts";
import { checkedJobId, UsageError } from "./parse.ts";
import { writeOutput } from "./output.ts";
import { parseDurationMs, parseInteger } from "./parse.ts";

/** How long a running job's replay may pause before `logs` (without -f) stops reading. */
const QUIET_MS = 300;

/** Builds the `logs` command. */
export function logsCommand(setExitCode: ExitCodeSink) {
  return new Command("logs")
    .description("print a job's output (-f: follow it until the job ends, then exit with its code)")
    .argument("<job-id>", "id of the job")
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
    .addHelpText(
      "after",
      `
Examples:
  airunner logs "$id" > build.log 2> build.err
  airunner logs -f "$id"
  airunner logs --attempt 2 "$id"      # the second attempt's output alone
  airunner logs -f --attempt 3 "$id"   # follow attempt 3 (running) until it ends

Between two attempts of a retried job, a line such as
  airunner: attempt 2 of 4 after exit 1, in 8 s
goes to stderr (not with --attempt, which prints one attempt's output alone).
With -f --attempt N, an attempt that has ended is printed, not followed; the
exit code is then that attempt's (its command's code, 124 after a timeout,
1 for a lost worker), or the job's when the attempt was the job's last.

${EXIT_CODES_HELP}`,
    )
    .action(async (jobId, opts) => {
      try {
        const id = checkedJobId(jobId);
        const fromSequence = BigInt(
          parseInteger(opts.fromSequence, "--from-sequence", 0, Number.MAX_SAFE_INTEGER),
        );
        const attempt = opts.attempt === undefined
          ? undefined
          : parseInteger(opts.attempt, "--attempt", 1, 1_000_000);
        const fromTimestampMs = opts.since === undefined
          ? 0
          : Date.now() - parseDurationMs(opts.since, "--since");
        const clients = await clientsFrom({ ...opts, callTimeout: opts.timeout });
        if (attempt !== undefined) {
          setExitCode(
            await printAttempt(clients, id, attempt, {
              fromSequence,
              fromTimestampMs,
              follow: opts.follow,
            }),
          );
        } else if (opts.follow) {
          const outcome = await followJobToOutcome(clients, id, {
            fromSequence,
            fromTimestampMs,
            eventTypes: OUTPUT_TYPES,
            onEvent: (e) => writeOutput(e),
            explainFailure: true,
          });
          setExitCode(outcome.exitCode);
        } else {
          const { job } = await clients.jobs.getJob({ jobId: id });
          await replay(clients, id, {
            fromSequence,
            fromTimestampMs,
            finished: job !== undefined && isFinished(job.state),
            onEvent: (e) => writeOutput(e),
          });
          setExitCode(0);
        }
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}

/** The events `logs` reads: output, and the notices between attempts. */
const OUTPUT_TYPES = [EventType.OUTPUT_BATCH, EventType.OUTPUT, EventType.ATTEMPT_END];

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
  options: { fromSequence: bigint; fromTimestampMs: number; follow: boolean },
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
    if (step.print) await writeOutput(event);
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
  await replay(clients, jobId, {
    fromSequence,
    fromTimestampMs: options.fromTimestampMs,
    eventTypes: ATTEMPT_TYPES,
    finished: isFinished(job.state),
    onEvent,
  });
  return await exitCode();
}

/**
 * Prints the events stored so far, until `onEvent` says "stop". A finished
 * job's stream ends by itself; a running job's replay is read until it
 * pauses.
 */
async function replay(
  clients: CliClients,
  jobId: string,
  options: {
    fromSequence: bigint;
    fromTimestampMs: number;
    eventTypes?: readonly EventType[];
    finished: boolean;
    onEvent: (event: JobEvent) => Promise<FollowStep>;
  },
): Promise<void> {
  const stop = new AbortController();
  let quiet: ReturnType<typeof setTimeout> | undefined;
  const armQuiet = () => {
    if (options.finished) return;
    clearTimeout(quiet);
    quiet = setTimeout(() => stop.abort(), QUIET_MS);
  };
  armQuiet();
  try {
    const stream = clients.events.streamJobEvents(
      {
        jobId,
        fromSequence: options.fromSequence,
        fromTimestamp: BigInt(options.fromTimestampMs),
        eventFilter: [...options.eventTypes ?? OUTPUT_TYPES],
      },
      { signal: stop.signal },
    );
    for await (const { event } of stream) {
      armQuiet();
      if (event === undefined) continue;
      if (await options.onEvent(event) === "stop") {
        stop.abort();
        break;
      }
    }
  } catch (error) {
    if (!(stop.signal.aborted && rpcErrorOf(error) !== undefined)) throw error;
  } finally {
    clearTimeout(quiet);
  }
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
