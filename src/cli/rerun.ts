/**
 * `airunner rerun JOB_ID`: submit a new job with the parameters of an
 * earlier one (its secrets too: the server copies them, since no reader of
 * the API sees their values), on the same queue, with `rerun_of` naming
 * the earlier job. Prints the new id, or follows it like `submit`.
 *
 * @module
 */
import type { CommandContext } from "./command_index.ts";
import type { CommandSpec } from "./command_spec.ts";
import { CLIENT_OPTIONS, type ClientCommandFlags, clientsFrom } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { EXIT_CODES_HELP } from "./exit_codes.ts";
import { checkedJobId, usageChecked, UsageError } from "./parse.ts";
import { validateRequestId } from "../protocol/request_validation.ts";
import { reportSubmitted } from "./submit.ts";

/** The flags of `rerun`, as its spec parses them. */
interface RerunFlags extends ClientCommandFlags {
  readonly requestId?: string;
  readonly follow: boolean;
  readonly wait: boolean;
  readonly json: boolean;
  readonly cancelOnInterrupt: boolean;
}

/** The `rerun` command. */
export function rerunSpec({ setExitCode }: CommandContext): CommandSpec {
  return {
    name: "rerun",
    description: "submit a job again with the same parameters; prints the new id",
    arguments: [{ name: "job-id", description: "id of the job to run again", required: true }],
    options: [
      ...CLIENT_OPTIONS,
      {
        flags: "--request-id <id>",
        description: "idempotency key: repeating a rerun with it returns the same new job",
      },
      {
        flags: "--follow",
        description: "stream the new job's output, then exit with its exit code",
        defaultValue: false,
      },
      {
        flags: "--wait",
        description: "wait for the new job to end, then exit with its exit code",
        defaultValue: false,
      },
      {
        flags: "--json",
        description: "print one JSON object instead of the id (job output then goes to stderr)",
        defaultValue: false,
      },
      {
        flags: "--cancel-on-interrupt",
        description: "Ctrl-C cancels the new job instead of leaving it running",
        defaultValue: false,
      },
    ],
    helpAfter: `
The new job has the old one's command, environment, secrets, checkout,
timeout and retry policy, on the same queue; "airunner get" shows its
rerun_of. Any job can be rerun, whatever its state.

Examples:
  airunner rerun "$id"
  airunner rerun "$id" --follow; echo "exit $?"

${EXIT_CODES_HELP}`,
    run: async ({ args: [jobId], opts }) => {
      const flags = opts as unknown as RerunFlags;
      try {
        if (flags.follow && flags.wait) throw new UsageError("choose --follow or --wait, not both");
        const requestId = flags.requestId === undefined
          ? ""
          : usageChecked(() => validateRequestId(flags.requestId!));
        const clients = await clientsFrom({ ...flags, callTimeout: flags.timeout });
        const { job } = await clients.jobs.rerunJob({ jobId: checkedJobId(jobId!), requestId });
        if (job === undefined) throw new Error("the server returned no job");
        setExitCode(
          await reportSubmitted(clients, job, {
            mode: flags.follow ? "follow" : flags.wait ? "wait" : "none",
            json: flags.json,
            cancelOnInterrupt: flags.cancelOnInterrupt,
          }, `(a rerun of ${jobId}) submitted`),
        );
      } catch (error) {
        setExitCode(reportError(error, flags.server));
      }
    },
  };
}
