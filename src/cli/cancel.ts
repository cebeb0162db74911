/**
 * `airunner cancel JOB_ID`: cancel a job. A scheduled job is cancelled at
 * once; a running one is stopped by its worker within a few seconds.
 *
 * @module
 */
import { JobState } from "../../gen/job/v1/job_lite.ts";
import type { CommandContext } from "./command_index.ts";
import type { CommandSpec } from "./command_spec.ts";
import { CLIENT_OPTIONS, type ClientCommandFlags, clientsFrom } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { checkedJobId } from "./parse.ts";
import { summarizeJob } from "./job_format.ts";

/** The flags of `cancel`, as its spec parses them. */
interface CancelFlags extends ClientCommandFlags {
  readonly reason: string;
  readonly json: boolean;
}

/** The `cancel` command. */
export function cancelSpec({ setExitCode }: CommandContext): CommandSpec {
  return {
    name: "cancel",
    description: "cancel a job (a running one is stopped by its worker within seconds)",
    arguments: [{ name: "job-id", description: "id of the job", required: true }],
    options: [
      ...CLIENT_OPTIONS,
      { flags: "--reason <text>", description: "why, for the record", defaultValue: "" },
      {
        flags: "--json",
        description: "print the job after the cancel as JSON (as list --json shows a job)",
        defaultValue: false,
      },
    ],
    helpAfter: "\nExample:\n  airunner cancel \"$id\" --reason 'superseded by a newer build'",
    run: async ({ args: [jobId], opts }) => {
      const flags = opts as unknown as CancelFlags;
      try {
        const clients = await clientsFrom({ ...flags, callTimeout: flags.timeout });
        const { job } = await clients.jobs.cancelJob({
          jobId: checkedJobId(jobId!),
          reason: flags.reason,
        });
        if (job === undefined) throw new Error("the server returned no job");
        if (flags.json) console.log(JSON.stringify(summarizeJob(job)));
        console.error(
          job.state === JobState.CANCELLED
            ? `airunner: job ${jobId} cancelled`
            : `airunner: job ${jobId} is running; its worker stops it within a few seconds`,
        );
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error, flags.server));
      }
    },
  };
}
