/**
 * `airunner get JOB_ID`: everything about one job.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import {
  caCertOption,
  callTimeoutOption,
  clientsFrom,
  type ExitCodeSink,
  serverOption,
  tokenOption,
} from "./common_options.ts";
import { reportError } from "./errors.ts";
import { describeJob, jobDetails } from "./job_format.ts";
import { checkedJobId } from "./monitor.ts";

/** Builds the `get` command. */
export function getCommand(setExitCode: ExitCodeSink) {
  return new Command("get")
    .description("show everything about one job")
    .argument("<job-id>", "id of the job")
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caCertOption())
    .addOption(callTimeoutOption())
    .option("--json", "print JSON", false)
    .option(
      "--show-env",
      "show environment values (names are always shown; secret_env values never are)",
      false,
    )
    .addHelpText(
      "after",
      '\nExamples:\n  airunner get "$id"\n  airunner get "$id" --json | jq .state',
    )
    .action(async (jobId, opts) => {
      try {
        const clients = await clientsFrom({ ...opts, callTimeout: opts.timeout });
        const { job } = await clients.jobs.getJob({ jobId: checkedJobId(jobId) });
        if (job === undefined) throw new Error("the server returned no job");
        console.log(
          opts.json
            ? JSON.stringify(jobDetails(job, opts.showEnv), null, 2)
            : describeJob(job, Date.now(), opts.showEnv),
        );
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}
