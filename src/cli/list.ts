/**
 * `airunner list`: a table (or JSON) of jobs, newest first.
 *
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import { createAirunnerClients } from "../client/transport.ts";
import { type ExitCodeSink, serverOption } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { formatJobTable, summarizeJob } from "./job_format.ts";
import { parseInteger, parseJobState, STATE_NAMES } from "./parse.ts";

/** Builds the `list` command. */
export function listCommand(setExitCode: ExitCodeSink) {
  return new Command("list")
    .description("list jobs, newest first")
    .addOption(serverOption())
    .option("--queue <name>", "only this queue")
    .addOption(new Option("--state <state>", "only jobs in this state").choices(STATE_NAMES))
    .option("--page <n>", "page number, from 1", "1")
    .option("--page-size <n>", "jobs per page", "50")
    .option("--json", "print JSON (an array of jobs)", false)
    .addHelpText(
      "after",
      "\nExamples:\n  airunner list --state failed\n  airunner list --json | jq '.[0].id'",
    )
    .action(async (opts) => {
      try {
        const clients = createAirunnerClients({ serverUrl: opts.server });
        const page = parseInteger(opts.page, "--page", 1, 1_000_000);
        const res = await clients.jobs.listJobs({
          queue: opts.queue ?? "",
          state: opts.state === undefined ? 0 : parseJobState(opts.state),
          page,
          pageSize: parseInteger(opts.pageSize, "--page-size", 1, 1000),
        });
        console.log(
          opts.json
            ? JSON.stringify(res.jobs.map(summarizeJob), null, 2)
            : formatJobTable(res.jobs),
        );
        if (!opts.json && res.lastPage > page) {
          console.error(`airunner: page ${page} of ${res.lastPage}; next: --page ${page + 1}`);
        }
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}
