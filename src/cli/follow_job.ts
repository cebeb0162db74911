/**
 * Following a job from a command (`submit --follow/--wait`, `logs -f`,
 * `monitor`): a spinner while the job waits for a worker (on a terminal),
 * Ctrl-C that stops following and says how to resume (or cancels the job,
 * when asked), reconnect notices, why a failed job failed, and the job's
 * outcome as the exit code.
 *
 * @module
 */
import { rpcErrorOf } from "../rpc_error.ts";
import type { Job, JobEvent } from "../../gen/job/v1/job_pb.ts";
import { type EventType, JobState } from "../../gen/job/v1/job_lite.ts";
import { followJob } from "../client/follow.ts";
import type { CliJobClients } from "../client/json_client.ts";
import { ExitCode, exitCodeOfJob } from "./exit_codes.ts";
import { formatElapsed, startSpinner } from "./terminal.ts";

/** Options of {@link followJobToOutcome}. */
export interface FollowJobOptions {
  readonly fromSequence?: bigint;
  readonly fromTimestampMs?: number;
  readonly eventTypes?: readonly EventType[];
  /** Called for each event, in order; "stop" ends the follow after it (the job may go on). */
  readonly onEvent: (event: JobEvent) => FollowStep | Promise<FollowStep>;
  /** Print why the job failed when it did (for commands that show only output). */
  readonly explainFailure: boolean;
  /** Show a spinner naming this queue until the job starts (on a terminal only). */
  readonly spinnerQueue?: string;
  /** A delayed start's time (Unix ms): until then the spinner counts down to it. */
  readonly spinnerStartsAtMs?: number;
  /** Ctrl-C cancels the job (then follows it to its end) instead of leaving it running. */
  readonly cancelOnInterrupt?: boolean;
  /** The server has just answered about this job (see FollowOptions.jobKnownToExist). */
  readonly jobKnownToExist?: boolean;
}

/** What {@link FollowJobOptions.onEvent} asks for: more events (undefined) or "stop". */
export type FollowStep = void | "stop";

/** How following ended. */
export interface FollowOutcome {
  /** The finished job; undefined when following stopped first (Ctrl-C, or onEvent said "stop"). */
  readonly job?: Job;
  /** onEvent said "stop" (exitCode is then 0: the caller knows what it stopped for). */
  readonly stopped?: true;
  readonly exitCode: number;
}

/** Thrown through followJob when onEvent says "stop": its errors end a follow. */
class StopFollowing extends Error {}

/** Follows `jobId` to its end (or to Ctrl-C). */
export async function followJobToOutcome(
  clients: CliJobClients,
  jobId: string,
  options: FollowJobOptions,
): Promise<FollowOutcome> {
  const interrupt = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (options.cancelOnInterrupt && interrupts === 1) {
      console.error(`\nairunner: cancelling job ${jobId} (Ctrl-C again stops following)`);
      void clients.jobs.cancelJob({ jobId, reason: "interrupted while followed" }).catch((error) =>
        console.error(
          `airunner: could not cancel: ${error instanceof Error ? error.message : error}`,
        )
      );
      return;
    }
    interrupt.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  const started = Date.now();
  let stopSpinner = options.spinnerQueue === undefined ? () => {} : startSpinner(() => {
    const now = Date.now();
    const startsAt = options.spinnerStartsAtMs ?? 0;
    return startsAt > now
      ? `delayed start: starts in ${formatElapsed(startsAt - now)}`
      : `waiting for a worker on queue "${options.spinnerQueue}" (${
        formatElapsed(now - Math.max(started, startsAt))
      })`;
  });
  let job: Job;
  try {
    job = await followJob(clients, jobId, {
      onEvent: async (event) => {
        stopSpinner();
        stopSpinner = () => {};
        if (await options.onEvent(event) === "stop") throw new StopFollowing();
      },
      signal: interrupt.signal,
      onReconnect: (error) => {
        stopSpinner();
        console.error(`airunner: lost the server (${error.rawMessage}); reconnecting...`);
      },
      ...(options.fromSequence === undefined ? {} : { fromSequence: options.fromSequence }),
      ...(options.fromTimestampMs === undefined
        ? {}
        : { fromTimestampMs: options.fromTimestampMs }),
      ...(options.eventTypes === undefined ? {} : { eventTypes: options.eventTypes }),
      jobKnownToExist: options.jobKnownToExist === true,
    });
  } catch (error) {
    if (error instanceof StopFollowing) return { stopped: true, exitCode: ExitCode.Ok };
    if (!interrupt.signal.aborted || rpcErrorOf(error) === undefined) throw error;
    stopSpinner();
    console.error(
      `\nairunner: stopped following job ${jobId}; it keeps running (follow it again: airunner logs -f ${jobId})`,
    );
    return { exitCode: ExitCode.JobCancelled };
  } finally {
    stopSpinner();
    Deno.removeSignalListener("SIGINT", onSigint);
  }
  if (options.explainFailure) explainFailure(job);
  return { job, exitCode: exitCodeOfJob(job) };
}

function explainFailure(job: Job): void {
  const line = failureLine(job);
  if (line !== undefined) console.error(line);
}

/** The line that says why a finished job failed, as `logs -f` of one job prints it; undefined when it did not. */
export function failureLine(job: Job): string | undefined {
  if (job.state === JobState.CANCELLED) {
    return `airunner: job ${job.jobId} was cancelled (${job.cancelReason || "no reason given"})`;
  }
  if (job.state === JobState.FAILED) {
    const why = job.result?.errorMessage || `exited with code ${job.result?.exitCode ?? "?"}`;
    return `airunner: job ${job.jobId} failed: ${why}`;
  }
  return undefined;
}
