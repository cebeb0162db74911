/**
 * Exit codes of the airunner command. A followed job's own exit code passes
 * through; these are the ones airunner itself uses.
 *
 * @module
 */
import type { Job } from "../../gen/job/v1/job_pb.ts";
import { JobState } from "../../gen/job/v1/job_lite.ts";
import { ExitCode } from "./exit_code_numbers.ts";

export { ExitCode };

/** The exit codes, as `--help` of the commands that follow jobs shows them. */
export const EXIT_CODES_HELP = `Exit codes when following or waiting: the job's own exit code, or
  124  the job timed out
  125  airunner itself failed (server unreachable, authentication)
  126  the command could not start
  127  the command was not found
  130  the job was cancelled, or you pressed Ctrl-C (the job keeps running)
  2    usage error`;

/** The exit code that stands for a finished job's outcome. */
export function exitCodeOfJob(job: Job): number {
  if (job.state === JobState.COMPLETED) return ExitCode.Ok;
  if (job.state === JobState.CANCELLED) return ExitCode.JobCancelled;
  const code = job.result?.exitCode ?? ExitCode.Error;
  // Codes outside 1..255 cannot survive a process exit: report plain failure.
  return code >= 1 && code <= 255 ? code : ExitCode.Error;
}
