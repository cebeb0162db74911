/**
 * Following a job from a command (`submit --follow`, `monitor`): Ctrl-C
 * stops following (the job keeps running) and says how to resume, a lost
 * connection is reported while it is retried, a job that failed says why,
 * and the job's outcome becomes the exit code.
 *
 * @module
 */
import { ConnectError } from "@connectrpc/connect";
import { type Job, type JobEvent, JobState } from "../../gen/job/v1/job_pb.ts";
import { followJob } from "../client/follow.ts";
import type { AirunnerClients } from "../client/transport.ts";
import { ExitCode, exitCodeOfJob } from "./exit_codes.ts";

/** Options of {@link followJobToExitCode}. */
export interface FollowJobOptions {
  readonly fromSequence?: bigint;
  readonly onEvent: (event: JobEvent) => void | Promise<void>;
  /** Print why the job failed when it did (for commands that show only output). */
  readonly explainFailure: boolean;
}

/** Follows `jobId` to its end and returns the exit code that stands for it. */
export async function followJobToExitCode(
  clients: AirunnerClients,
  jobId: string,
  options: FollowJobOptions,
): Promise<number> {
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  Deno.addSignalListener("SIGINT", onSigint);
  let job: Job;
  try {
    job = await followJob(clients, jobId, {
      onEvent: options.onEvent,
      signal: interrupt.signal,
      onReconnect: (error) =>
        console.error(`airunner: lost the server (${error.rawMessage}); reconnecting...`),
      ...(options.fromSequence === undefined ? {} : { fromSequence: options.fromSequence }),
    });
  } catch (error) {
    if (!interrupt.signal.aborted || !(error instanceof ConnectError)) throw error;
    console.error(
      `\nairunner: stopped following job ${jobId}; it keeps running (follow it again: airunner monitor ${jobId})`,
    );
    return ExitCode.JobCancelled;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
  if (options.explainFailure) explainFailure(job);
  return exitCodeOfJob(job);
}

function explainFailure(job: Job): void {
  if (job.state === JobState.CANCELLED) {
    console.error(`airunner: job ${job.jobId} was cancelled`);
  } else if (job.state === JobState.FAILED) {
    const why = job.result?.errorMessage || `exited with code ${job.result?.exitCode ?? "?"}`;
    console.error(`airunner: job ${job.jobId} failed: ${why}`);
  }
}
