/**
 * `airunner get JOB_ID`: everything about one job, its attempts and retry
 * policy included.
 *
 * @module
 */
import type { CommandContext } from "./command_index.ts";
import type { CommandSpec } from "./command_spec.ts";
import { CLIENT_OPTIONS, type ClientCommandFlags, clientsFrom } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { describeJob, jobDetails } from "./job_format.ts";
import { checkedJobId } from "./parse.ts";

/** The flags of `get`, as its spec parses them. */
interface GetFlags extends ClientCommandFlags {
  readonly json: boolean;
  readonly showEnv: boolean;
}

/** The `get` command. */
export function getSpec({ setExitCode }: CommandContext): CommandSpec {
  return {
    name: "get",
    description: "show everything about one job",
    arguments: [{ name: "job-id", description: "id of the job", required: true }],
    options: [
      ...CLIENT_OPTIONS,
      { flags: "--json", description: "print JSON", defaultValue: false },
      {
        flags: "--show-env",
        description:
          "show environment values (names are always shown; secret_env values never are)",
        defaultValue: false,
      },
    ],
    helpAfter: '\nExamples:\n  airunner get "$id"\n  airunner get "$id" --json | jq .state\n' +
      "  airunner get \"$id\" --json | jq -c '.attempts[] | {number, outcome, exitCode}'",
    run: async ({ args: [jobId], opts }) => {
      const flags = opts as unknown as GetFlags;
      try {
        const clients = await clientsFrom({ ...flags, callTimeout: flags.timeout });
        const { job } = await clients.jobs.getJob({ jobId: checkedJobId(jobId!) });
        if (job === undefined) throw new Error("the server returned no job");
        console.log(
          flags.json
            ? JSON.stringify(jobDetails(job, flags.showEnv), null, 2)
            : describeJob(job, Date.now(), flags.showEnv),
        );
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error, flags.server));
      }
    },
  };
}
