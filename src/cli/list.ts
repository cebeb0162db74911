/**
 * `airunner list`: jobs newest first, as a table, a wide table or JSON;
 * `--watch` redraws the table in place until Ctrl-C.
 *
 * @module
 */
import type { CommandContext } from "./command_index.ts";
import type { CommandSpec } from "./command_spec.ts";
import type { CliClients } from "../client/json_client.ts";
import { CLIENT_OPTIONS, type ClientCommandFlags, clientsFrom } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { environmentOf, formatJobTable, secretEnvironmentOf, summarizeJob } from "./job_format.ts";
import { parseInteger, parseJobState, parseKeyValues, STATE_NAMES, UsageError } from "./parse.ts";
import { ansi, stdoutIsTerminal } from "./terminal.ts";
import { SCHEDULE_METADATA_KEY } from "../protocol/schedule_keys.ts";

/** How long `--watch` waits between redraws. */
const WATCH_INTERVAL_MS = 2_000;

/** The flags of `list`, as its spec parses them. */
interface ListFlags extends ClientCommandFlags {
  readonly queue?: string;
  readonly state?: string;
  readonly schedule?: string;
  readonly metadata: string[];
  readonly page: string;
  readonly pageSize: string;
  readonly output: "table" | "wide" | "json";
  readonly json: boolean;
  readonly showEnv: boolean;
  readonly watch: boolean;
}

/** The `list` command. */
export function listSpec({ setExitCode }: CommandContext): CommandSpec {
  return {
    name: "list",
    description: "list jobs, newest first",
    arguments: [],
    options: [
      ...CLIENT_OPTIONS,
      { flags: "--queue <name>", description: "only this queue" },
      { flags: "--state <state>", description: "only jobs in this state", choices: STATE_NAMES },
      {
        flags: "--schedule <name>",
        description: "only the jobs this schedule made (same as --metadata schedule=NAME)",
      },
      {
        flags: "--metadata <KEY=VALUE>",
        description: "only jobs with this metadata (repeatable: every pair must match)",
        repeatable: true,
        defaultValue: [],
      },
      { flags: "--page <n>", description: "page number, from 1", defaultValue: "1" },
      { flags: "--page-size <n>", description: "jobs per page", defaultValue: "50" },
      {
        flags: "--output <format>",
        description: "table, wide (adds repository, owner, attempt) or json",
        choices: ["table", "wide", "json"],
        defaultValue: "table",
      },
      { flags: "--json", description: "same as --output json", defaultValue: false },
      {
        flags: "--show-env",
        description:
          "show environment values in --json (names are always shown; secret_env values never are)",
        defaultValue: false,
      },
      {
        flags: "--watch",
        description: "redraw every 2 s until Ctrl-C (on a terminal)",
        defaultValue: false,
      },
    ],
    helpAfter:
      "\nExamples:\n  airunner list --state failed\n  airunner list --schedule nightly --page-size 10\n  airunner list --output wide --watch\n  airunner list --json | jq -r '.[0].id'",
    run: async ({ opts: parsed }) => {
      const opts = parsed as unknown as ListFlags;
      try {
        const format = opts.json ? "json" : opts.output;
        const query = {
          queue: opts.queue ?? "",
          state: opts.state === undefined ? 0 : parseJobState(opts.state),
          page: parseInteger(opts.page, "--page", 1, 1_000_000),
          pageSize: parseInteger(opts.pageSize, "--page-size", 1, 1000),
          metadata: {
            ...parseKeyValues(opts.metadata, "--metadata"),
            ...(opts.schedule === undefined ? {} : { [SCHEDULE_METADATA_KEY]: opts.schedule }),
          },
        };
        const clients = await clientsFrom({ ...opts, callTimeout: opts.timeout });
        if (opts.watch) {
          if (format === "json") {
            throw new UsageError("--watch draws a table; it does not go with --json");
          }
          setExitCode(await watch(clients, query, format === "wide"));
          return;
        }
        const res = await clients.jobs.listJobs(query);
        console.log(
          format === "json"
            ? JSON.stringify(
              res.jobs.map((job) => ({
                ...summarizeJob(job),
                environment: environmentOf(job, opts.showEnv),
                secretEnvironment: secretEnvironmentOf(job),
              })),
              null,
              2,
            )
            : formatJobTable(res.jobs, Date.now(), format === "wide"),
        );
        if (format !== "json" && res.lastPage > query.page) {
          console.error(
            `airunner: page ${query.page} of ${res.lastPage}; next: --page ${query.page + 1}`,
          );
        }
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    },
  };
}

/**
 * Redraws the table every {@link WATCH_INTERVAL_MS} on the alternate screen
 * (so the terminal looks as before once it ends) until Ctrl-C.
 */
async function watch(
  clients: CliClients,
  query: Parameters<CliClients["jobs"]["listJobs"]>[0],
  wide: boolean,
): Promise<number> {
  const terminal = stdoutIsTerminal();
  const write = (text: string) => Deno.stdout.writeSync(new TextEncoder().encode(text));
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSigint);
  if (terminal) write(ansi.alternateScreen + ansi.hideCursor);
  try {
    while (!stop.signal.aborted) {
      const res = await clients.jobs.listJobs(query, { signal: stop.signal }).catch((error) => {
        if (stop.signal.aborted) return undefined;
        throw error;
      });
      if (res === undefined) break;
      const table = formatJobTable(res.jobs, Date.now(), wide);
      const title = `airunner list, every ${WATCH_INTERVAL_MS / 1000}s (Ctrl-C to stop)  ${
        new Date().toLocaleTimeString()
      }`;
      if (terminal) {
        write(`${ansi.home}${title}\n\n${table.replaceAll("\n", `\n`)}\n${ansi.clearBelow}`);
      } else write(`${title}\n${table}\n\n`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, WATCH_INTERVAL_MS);
        stop.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    if (terminal) write(ansi.showCursor + ansi.mainScreen);
  }
  return 0;
}
