/**
 * `airunner monitor JOB_ID`: print a job's events as they arrive and exit
 * with the job's exit code once it ends.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import { followJob } from "../client/follow.ts";
import { createAirunnerClients } from "../client/transport.ts";
import { validateJobId } from "../server/request_validation.ts";
import { type ExitCodeSink, serverOption } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { exitCodeOfJob } from "./exit_codes.ts";
import { describeLifecycleEvent } from "./job_format.ts";
import { writeOutput } from "./output.ts";
import { parseInteger, UsageError } from "./parse.ts";

/** Builds the `monitor` command. */
export function monitorCommand(setExitCode: ExitCodeSink) {
  return new Command("monitor")
    .description("print a job's events as they happen; exits with the job's exit code")
    .argument("<job-id>", "id of the job")
    .addOption(serverOption())
    .option("--from-sequence <n>", "start at this event sequence", "0")
    .addHelpText("after", "\nExample:\n  airunner monitor 0193c3a1-7c2e-7d10-9a1e-5b3c2d1e0f00")
    .action(async (jobId, opts) => {
      try {
        const id = checkedJobId(jobId);
        const from = BigInt(
          parseInteger(opts.fromSequence, "--from-sequence", 0, Number.MAX_SAFE_INTEGER),
        );
        const clients = createAirunnerClients({ serverUrl: opts.server });
        const job = await followJob(clients, id, { fromSequence: from, onEvent: printEvent });
        setExitCode(exitCodeOfJob(job));
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}

/** Checks a job id given on the command line. */
export function checkedJobId(jobId: string): string {
  try {
    return validateJobId(jobId, "JOB_ID");
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

async function printEvent(event: JobEvent): Promise<void> {
  const line = describeLifecycleEvent(event);
  if (line !== undefined) console.log(line);
  else await writeOutput(event);
}
