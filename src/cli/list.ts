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
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampOfMillis } from "../protocol/timestamp_ms.ts";
import { parseRunAt } from "./start_flags.ts";
import {
  parseDurationMs,
  parseInteger,
  parseJobState,
  parseKeyValues,
  STATE_NAMES,
  UsageError,
} from "./parse.ts";
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
  readonly owner?: string;
  readonly since?: string;
  readonly until?: string;
  readonly limit?: string;
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
      { flags: "--owner <name>", description: "only jobs of this owner" },
      {
        flags: "--since <when>",
        description: "only jobs created in the last DURATION (2h) or since an RFC 3339 time",
      },
      {
        flags: "--until <when>",
        description: "only jobs created before DURATION ago (30m) or an RFC 3339 time",
      },
      { flags: "--limit <n>", description: "at most N jobs (1..1000; same as --page-size)" },
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
      "\nExamples:\n  airunner list --state failed --since 2h\n  airunner list --schedule nightly --limit 10\n  airunner list --owner ci --metadata build=1234 --json\n  airunner list --output wide --watch\n  airunner list --json | jq -r '.[0].id'",
    run: async ({ opts: parsed }) => {
      const opts = parsed as unknown as ListFlags;
      try {
        const format = opts.json ? "json" : opts.output;
        const query = {
          queue: opts.queue ?? "",
          state: opts.state === undefined ? 0 : parseJobState(opts.state),
          page: parseInteger(opts.page, "--page", 1, 1_000_000),
          pageSize: parseInteger(
            opts.limit ?? opts.pageSize,
            opts.limit === undefined ? "--page-size" : "--limit",
            1,
            1000,
          ),
          owner: opts.owner ?? "",
          ...timeBound("createdAfter", opts.since, "--since"),
          ...timeBound("createdBefore", opts.until, "--until"),
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
                metadata: { ...job.jobParams?.metadata },
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
 * `--since`/`--until` as a ListJobsRequest bound: a duration counts back
 * from now (`2h`), anything else must be an RFC 3339 time with a zone.
 */
function timeBound(
  field: "createdAfter" | "createdBefore",
  value: string | undefined,
  flag: string,
): { createdAfter?: Timestamp; createdBefore?: Timestamp } {
  if (value === undefined) return {};
  const ms = /^\d/.test(value) && !/^\d{4}-\d{2}-\d{2}/.test(value)
    ? Date.now() - parseDurationMs(value, flag)
    : parseRunAt(value, flag).runAtMs!;
  return { [field]: timestampOfMillis(ms) };
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
        // Each line ends by erasing the rest of it: a row drawn shorter
        // than before ("failed" where "running" was) leaves nothing behind.
        const lines = [title, "", ...table.split("\n")];
        write(
          `${ansi.home}${lines.map((l) => l + ansi.clearToEnd).join("\n")}\n${ansi.clearBelow}`,
        );
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
