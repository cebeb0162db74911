/**
 * `airunner wait ID...`: waits for jobs to end and prints one line per job
 * as it ends (`<id> <state> exit <code>`, or a JSON object with --json).
 * With --all (the default) it exits, once every job has ended, with the
 * first non-zero exit code in the order they ended (0 when all
 * succeeded); with --any, as soon as one job ends, with that job's code.
 * Jobs already finished count as ended when they did, in that order.
 *
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import type { Job } from "../../gen/job/v1/job_pb.ts";
import { EventType } from "../../gen/job/v1/job_lite.ts";
import { followJob } from "../client/follow.ts";
import { isFinished } from "../protocol/job_state.ts";
import { millis } from "../protocol/timestamp_ms.ts";
import { rpcErrorOf } from "../rpc_error.ts";
import { clientsFrom, type ExitCodeSink } from "./common_options.ts";
import { caCertOption, callTimeoutOption, serverOption, tokenOption } from "./commander_options.ts";
import { reportError } from "./errors.ts";
import { EXIT_CODES_HELP, ExitCode, exitCodeOfJob } from "./exit_codes.ts";
import { iso, summarizeJob } from "./job_format.ts";
import { selectJobs } from "./logs_many.ts";
import { checkedJobId, jobStateName } from "./parse.ts";

/** The JSON line of one ended job (the keys of `submit --wait --json`). */
export interface WaitJson {
  readonly id: string;
  readonly queue: string;
  readonly state: string;
  /** The command's exit code; null when none ran to an end. */
  readonly exitCode: number | null;
  readonly startedAt: string | null;
  readonly completedAt: string | null;
  readonly error: string | null;
}

/** The line `wait` prints for an ended job: `<id> <state> exit <code>` (the code wait would exit with). */
export function waitLine(job: Job): string {
  return `${job.jobId} ${jobStateName(job.state)} exit ${exitCodeOfJob(job)}`;
}

/** The JSON `wait --json` prints for an ended job. */
export function waitJson(job: Job): WaitJson {
  return {
    id: job.jobId,
    queue: job.queue,
    state: jobStateName(job.state),
    exitCode: summarizeJob(job).exitCode,
    startedAt: iso(job.result?.startedAt),
    completedAt: iso(job.result?.completedAt),
    error: job.result?.errorMessage || job.cancelReason || null,
  };
}

/**
 * The exit code of `wait --all` for jobs in the order they ended: the
 * first non-zero one, 0 when there is none.
 */
export function firstFailureCode(endOrder: readonly Job[]): number {
  for (const job of endOrder) {
    const code = exitCodeOfJob(job);
    if (code !== 0) return code;
  }
  return ExitCode.Ok;
}

/** When a finished job ended (Unix ms; 0 when it does not say). */
function endedAtMs(job: Job): number {
  return millis(job.result?.completedAt) ?? millis(job.updatedAt) ?? 0;
}

/** Builds the `wait` command. */
export function waitCommand(setExitCode: ExitCodeSink) {
  return new Command("wait")
    .description(
      "wait for jobs to end; prints a line per job as it ends, exits with the first failure",
    )
    .argument("<job-id...>", "ids of the jobs")
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caCertOption())
    .addOption(callTimeoutOption())
    .addOption(
      new Option(
        "--all",
        "wait for every job (the default); exit with the first non-zero exit code, or 0",
      ).conflicts("any"),
    )
    .addOption(new Option("--any", "wait for the first job to end; exit with its exit code"))
    .option("--json", "one JSON object per line per job as it ends", false)
    .addHelpText(
      "after",
      `
Examples:
  airunner wait "$a" "$b" "$c"           # prints "<id> <state> exit <code>" as each ends
  airunner wait --any "$a" "$b"          # the first to end decides
  airunner wait --json $(cat ids.txt) | jq -r 'select(.state != "completed") | .id'

Jobs that have already ended count in the order they ended. With --all the
exit code is that of the first job to fail, in the order the jobs ended
(0 when every job completed); with --any, that of the first job to end.
At most 1000 jobs at once.

${EXIT_CODES_HELP}`,
    )
    .action(async (jobIds, opts) => {
      try {
        const ids = jobIds.map(checkedJobId);
        const clients = await clientsFrom({ ...opts, callTimeout: opts.timeout });
        const jobs = await selectJobs(clients, { ids, metadata: {}, queue: "" });
        const print = (job: Job) =>
          console.log(opts.json ? JSON.stringify(waitJson(job)) : waitLine(job));
        const ended = jobs.filter((j) => isFinished(j.state))
          .sort((a, b) => endedAtMs(a) - endedAtMs(b));
        const pending = jobs.filter((j) => !isFinished(j.state));
        if (opts.any === true && ended.length > 0) {
          print(ended[0]!);
          setExitCode(exitCodeOfJob(ended[0]!));
          return;
        }
        ended.forEach(print);
        setExitCode(
          await waitFor(pending, ended, {
            any: opts.any === true,
            print,
            follow: (job, signal) =>
              followJob(clients, job.jobId, {
                // The stream is only read to its end: ask for (almost) no events.
                eventTypes: [EventType.PROCESS_END],
                onEvent: () => {},
                signal,
                jobKnownToExist: true,
              }),
          }),
        );
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}

/** Waits for `pending` to end after `ended` did; returns the exit code. */
async function waitFor(
  pending: readonly Job[],
  ended: readonly Job[],
  how: {
    readonly any: boolean;
    readonly print: (job: Job) => void;
    readonly follow: (job: Job, signal: AbortSignal) => Promise<Job>;
  },
): Promise<number> {
  const order = [...ended];
  if (pending.length === 0) return firstFailureCode(order);
  const stop = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    stop.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const first = await new Promise<Job | undefined>((resolve, reject) => {
      let left = pending.length;
      for (const job of pending) {
        how.follow(job, stop.signal).then((done) => {
          if (stop.signal.aborted) return;
          how.print(done);
          order.push(done);
          if (how.any) resolve(done);
          if (--left === 0) resolve(undefined);
        }, (error) => {
          if (stop.signal.aborted && !interrupted) return;
          reject(error);
        });
      }
    });
    if (first !== undefined) return exitCodeOfJob(first);
    return firstFailureCode(order);
  } catch (error) {
    if (!interrupted || rpcErrorOf(error) === undefined) throw error;
    const left = pending.length - (order.length - ended.length);
    console.error(
      `\nairunner: stopped waiting; ${left === 1 ? "1 job keeps" : `${left} jobs keep`} running`,
    );
    return ExitCode.JobCancelled;
  } finally {
    stop.abort();
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}
