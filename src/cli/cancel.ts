/**
 * `airunner cancel JOB_ID`: cancel a job. A scheduled job is cancelled at
 * once; a running one is stopped by its worker within a few seconds.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { JobState } from "../../gen/job/v1/job_pb.ts";
import {
  caCertOption,
  callTimeoutOption,
  clientsFrom,
  type ExitCodeSink,
  serverOption,
  tokenOption,
} from "./common_options.ts";
import { reportError } from "./errors.ts";
import { checkedJobId } from "./monitor.ts";

/** Builds the `cancel` command. */
export function cancelCommand(setExitCode: ExitCodeSink) {
  return new Command("cancel")
    .description("cancel a job (a running one is stopped by its worker within seconds)")
    .argument("<job-id>", "id of the job")
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caCertOption())
    .addOption(callTimeoutOption())
    .option("--reason <text>", "why, for the record", "")
    .addHelpText(
      "after",
      "\nExample:\n  airunner cancel \"$id\" --reason 'superseded by a newer build'",
    )
    .action(async (jobId, opts) => {
      try {
        const clients = await clientsFrom({ ...opts, callTimeout: opts.timeout });
        const { job } = await clients.jobs.cancelJob({
          jobId: checkedJobId(jobId),
          reason: opts.reason,
        });
        console.error(
          job?.state === JobState.CANCELLED
            ? `airunner: job ${jobId} cancelled`
            : `airunner: job ${jobId} is running; its worker stops it within a few seconds`,
        );
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}
