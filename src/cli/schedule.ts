/**
 * `airunner schedule`: cron schedules whose firings enqueue ordinary jobs
 * (metadata schedule=NAME). `add` takes submit's job flags and the words
 * after `--`; `list`, `get`, `pause`, `resume`, `delete` and `run` manage
 * them. Every subcommand prints data to stdout (`--json`: one JSON value)
 * and diagnostics to stderr.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ScheduleSchema } from "../../gen/job/v1/job_pb.ts";
import type { CliClients } from "../client/json_client.ts";
import {
  CATCH_UP_POLICIES,
  OVERLAP_POLICIES,
  validateCronExpression,
  validateTimeZone,
} from "../protocol/schedule_spec.ts";
import { validateScheduleName } from "../protocol/schedule_validation.ts";
import type { CommandContext } from "./command_index.ts";
import { commanderOf } from "./commander_of.ts";
import type { CommandSpec, OptionSpec, ParsedCommandLine } from "./command_spec.ts";
import {
  CLIENT_OPTIONS,
  type ClientCommandFlags,
  type ClientFlags,
  clientsFrom,
} from "./common_options.ts";
import { reportError } from "./errors.ts";
import { EXIT_CODES_HELP } from "./exit_codes.ts";
import { iso } from "./job_format.ts";
import { usageChecked, UsageError } from "./parse.ts";
import {
  describeSchedule,
  formatScheduleTable,
  scheduleDetailsJson,
  scheduleJson,
} from "./schedule_format.ts";
import {
  FOLLOW_OPTIONS,
  parseSubmitConfig,
  readEnvFile,
  reportSubmitted,
  SUBMIT_OPTIONS,
  type SubmitFlags,
} from "./submit.ts";

/** Submit's flags that make no sense for a schedule's job: each firing is a new submit. */
const NOT_FOR_SCHEDULES = new Set([
  "--batch",
  "--request-id",
  "--delay",
  "--at",
  "--follow",
  "--wait",
  "--json",
  "--cancel-on-interrupt",
  "--after",
  "--after-any",
]);

const JSON_OPTION: OptionSpec = { flags: "--json", description: "print JSON", defaultValue: false };

/** The options of `schedule add`: the timing, then submit's job flags. */
const ADD_OPTIONS: readonly OptionSpec[] = [
  {
    flags: "--cron <expression>",
    description:
      "when it fires: 5 fields (minute hour day month weekday) or 6 (seconds first), such as '0 3 * * *'",
  },
  {
    flags: "--timezone <zone>",
    description: "IANA time zone the expression is read in, such as Europe/Berlin (default: UTC)",
  },
  {
    flags: "--overlap <policy>",
    description:
      "a firing while the previous job still runs: skip it, allow it, or cancel-previous (default: skip)",
    choices: OVERLAP_POLICIES,
  },
  {
    flags: "--catch-up <policy>",
    description:
      "a firing missed while no server ran: none skips it, latest runs the latest once at start (default: none)",
    choices: CATCH_UP_POLICIES,
  },
  { flags: "--paused", description: "store it paused (resume it later)", defaultValue: false },
  {
    flags: "--replace",
    description: "replace a schedule of the same name (its firing record is kept)",
    defaultValue: false,
  },
  JSON_OPTION,
  ...SUBMIT_OPTIONS.filter((o) => !NOT_FOR_SCHEDULES.has(o.flags.split(" ")[0]!)),
];

/** The flags of `schedule add`, as its spec parses them. */
interface AddFlags extends Omit<SubmitFlags, "follow" | "wait" | "json" | "cancelOnInterrupt"> {
  readonly cron?: string;
  readonly timezone?: string;
  readonly overlap?: string;
  readonly catchUp?: string;
  readonly paused: boolean;
  readonly replace: boolean;
  readonly json: boolean;
  readonly config?: string;
  readonly server: string;
  readonly token?: string;
  readonly caCert?: string;
  readonly callTimeout?: string;
}

/** Builds `schedule` and its subcommands. */
export function scheduleCommand(context: CommandContext) {
  const schedule = new Command("schedule")
    .description("run jobs on a cron schedule: add, list, get, pause, resume, delete, run")
    .addHelpText(
      "after",
      `
Examples:
  airunner schedule add nightly --cron '0 3 * * *' --timezone Europe/Berlin -- ./backup.sh
  airunner schedule add tick --cron '*/2 * * * * *' --overlap allow -- date +%s
  airunner schedule list
  airunner schedule get nightly
  airunner schedule run nightly --follow
  airunner list --schedule nightly`,
    );
  for (const spec of [addSpec, listSpec, getSpec, pauseSpec, resumeSpec, deleteSpec, runSpec]) {
    schedule.addCommand(commanderOf(spec(context)));
  }
  return schedule;
}

/** A subcommand's run, with its clients made and its errors reported. */
function clientRun(
  context: CommandContext,
  body: (parsed: ParsedCommandLine, clients: CliClients) => Promise<number>,
  callTimeoutFlag = "--timeout",
): CommandSpec["run"] {
  return async (parsed) => {
    const opts = parsed.opts as unknown as ClientCommandFlags & { callTimeout?: string };
    try {
      const flags: ClientFlags = {
        ...opts,
        callTimeout: callTimeoutFlag === "--timeout" ? opts.timeout : opts.callTimeout,
      };
      context.setExitCode(await body(parsed, await clientsFrom(flags, callTimeoutFlag)));
    } catch (error) {
      context.setExitCode(reportError(error, opts.server));
    }
  };
}

function nameArgument(description = "name of the schedule") {
  return [{ name: "name", description, required: true }];
}

function checkedName(name: string | undefined): string {
  return usageChecked(() => validateScheduleName(name ?? "", "NAME"));
}

/** The schedule `add` asks for, from its command line and job file (the job flags are submit's). */
export function parseScheduleAdd(
  name: string,
  repository: string | undefined,
  opts: AddFlags,
  trailing: string[] | undefined,
  file: Parameters<typeof parseSubmitConfig>[3] = {},
  envFile: Record<string, string> = {},
): { schedule: MessageInitShape<typeof ScheduleSchema>; replace: boolean } {
  if (opts.cron === undefined) {
    throw new UsageError("--cron: required, such as --cron '0 3 * * *' (see --help)");
  }
  const cron = usageChecked(() => validateCronExpression(opts.cron!, "--cron"));
  const timeZone = usageChecked(() => validateTimeZone(opts.timezone ?? "", "--timezone"));
  const job = parseSubmitConfig(
    repository,
    {
      ...opts,
      follow: false,
      wait: false,
      json: false,
      cancelOnInterrupt: false,
    },
    trailing,
    file,
    envFile,
  );
  return {
    schedule: {
      name: checkedName(name),
      cron,
      timeZone,
      overlap: opts.overlap ?? "",
      catchUp: opts.catchUp ?? "",
      queue: job.queue,
      jobParams: job.params,
      paused: opts.paused,
    },
    replace: opts.replace,
  };
}

function addSpec(context: CommandContext): CommandSpec {
  return {
    name: "add",
    description: "store a schedule; each firing enqueues the job after --",
    usage: "[options] NAME [REPOSITORY] -- COMMAND [ARG...]",
    arguments: [
      ...nameArgument("name of the schedule: letters, digits, '.', '-', '_' (at most 64)"),
      {
        name: "repository",
        description: "git repository the worker checks out and runs the command in",
        required: false,
      },
    ],
    options: ADD_OPTIONS,
    helpAfter: `
Each firing enqueues one job with metadata schedule=NAME, however many
servers run over the same store. The job takes submit's flags (--queue,
--env, --secret-env, --timeout, --retries, --priority, --config, ...).

Examples:
  airunner schedule add nightly --cron '0 3 * * *' --timezone Europe/Berlin -- ./backup.sh
  airunner schedule add every-2s --cron '*/2 * * * * *' --overlap allow -- date +%s
  airunner schedule add report --cron '0 9 * * 1-5' --catch-up latest --retries 2 -- ./report.sh`,
    run: clientRun(context, async ({ args: [name, repository], opts }, clients) => {
      const flags = opts as unknown as AddFlags;
      const file = flags.config === undefined
        ? {}
        : await (await import("./job_file.ts")).readJobFile(flags.config);
      const { schedule, replace } = parseScheduleAdd(
        name!,
        repository,
        flags,
        context.trailing(),
        file,
        flags.envFile === undefined ? {} : await readEnvFile(flags.envFile),
      );
      const res = await clients.schedules.createSchedule({ schedule, replace });
      const stored = res.schedule!;
      if (flags.json) {
        console.log(JSON.stringify(scheduleJson(stored), null, 2));
      } else {
        console.log(stored.name);
        const next = iso(stored.nextFirings[0]);
        console.error(
          `airunner: schedule "${stored.name}" ${replace ? "stored" : "added"}: ${stored.cron} (${
            stored.timeZone || "UTC"
          }); ${stored.paused ? "paused" : `next firing ${next ?? "never"}`}`,
        );
      }
      return 0;
    }, "--call-timeout"),
  };
}

function listSpec(context: CommandContext): CommandSpec {
  return {
    name: "list",
    description: "list schedules by name, with their next firing",
    arguments: [],
    options: [...CLIENT_OPTIONS, JSON_OPTION],
    run: clientRun(context, async ({ opts }, clients) => {
      const { schedules } = await clients.schedules.listSchedules({});
      console.log(
        opts.json
          ? JSON.stringify(schedules.map((s) => scheduleJson(s)), null, 2)
          : formatScheduleTable(schedules),
      );
      return 0;
    }),
  };
}

function getSpec(context: CommandContext): CommandSpec {
  return {
    name: "get",
    description: "show a schedule, its next 5 firings and its last 10 jobs",
    arguments: nameArgument(),
    options: [
      ...CLIENT_OPTIONS,
      JSON_OPTION,
      {
        flags: "--show-env",
        description: "show environment values (secret_env values never are)",
        defaultValue: false,
      },
    ],
    run: clientRun(context, async ({ args: [name], opts }, clients) => {
      const res = await clients.schedules.getSchedule({ name: checkedName(name) });
      const showEnv = opts.showEnv === true;
      console.log(
        opts.json
          ? JSON.stringify(scheduleDetailsJson(res.schedule!, res.recentJobs, showEnv), null, 2)
          : describeSchedule(res.schedule!, res.recentJobs, showEnv),
      );
      return 0;
    }),
  };
}

/** `pause` and `resume`: the same call but for the flag. */
function pausingSpec(context: CommandContext, pause: boolean): CommandSpec {
  const verb = pause ? "pause" : "resume";
  return {
    name: verb,
    description: pause
      ? "stop a schedule's firings until resume"
      : "let a paused schedule fire again, from now (firings while paused do not run)",
    arguments: nameArgument(),
    options: [...CLIENT_OPTIONS, JSON_OPTION],
    run: clientRun(context, async ({ args: [name], opts }, clients) => {
      const request = { name: checkedName(name) };
      const res = pause
        ? await clients.schedules.pauseSchedule(request)
        : await clients.schedules.resumeSchedule(request);
      const schedule = res.schedule!;
      if (opts.json) console.log(JSON.stringify(scheduleJson(schedule), null, 2));
      else {
        console.log(schedule.name);
        const next = iso(schedule.nextFirings[0]);
        console.error(
          `airunner: schedule "${schedule.name}" ${pause ? "paused" : "resumed"}${
            pause ? "" : `; next firing ${next ?? "never"}`
          }`,
        );
      }
      return 0;
    }),
  };
}

function pauseSpec(context: CommandContext): CommandSpec {
  return pausingSpec(context, true);
}

function resumeSpec(context: CommandContext): CommandSpec {
  return pausingSpec(context, false);
}

function deleteSpec(context: CommandContext): CommandSpec {
  return {
    name: "delete",
    description: "delete a schedule (the jobs it made stay)",
    arguments: nameArgument(),
    options: [...CLIENT_OPTIONS, JSON_OPTION],
    run: clientRun(context, async ({ args: [name], opts }, clients) => {
      const checked = checkedName(name);
      await clients.schedules.deleteSchedule({ name: checked });
      if (opts.json) console.log(JSON.stringify({ name: checked, deleted: true }));
      else {
        console.log(checked);
        console.error(`airunner: schedule "${checked}" deleted`);
      }
      return 0;
    }),
  };
}

function runSpec(context: CommandContext): CommandSpec {
  return {
    name: "run",
    description: "enqueue a schedule's job now; prints its id (--follow, --wait as submit)",
    arguments: nameArgument(),
    options: [
      ...CLIENT_OPTIONS,
      ...FOLLOW_OPTIONS,
      {
        flags: "--json",
        description: "print one JSON object instead of the id",
        defaultValue: false,
      },
      {
        flags: "--cancel-on-interrupt",
        description: "Ctrl-C cancels the job instead of leaving it running",
        defaultValue: false,
      },
    ],
    helpAfter: `\n${EXIT_CODES_HELP}`,
    run: clientRun(context, async ({ args: [name], opts }, clients) => {
      if (opts.follow === true && opts.wait === true) {
        throw new UsageError("choose --follow or --wait, not both");
      }
      const { job } = await clients.schedules.runSchedule({ name: checkedName(name) });
      if (job === undefined) throw new Error("the server returned no job");
      return await reportSubmitted(
        clients,
        { jobId: job.jobId, queue: job.queue, state: job.state },
        {
          mode: opts.follow === true ? "follow" : opts.wait === true ? "wait" : "none",
          json: opts.json === true,
          cancelOnInterrupt: opts.cancelOnInterrupt === true,
        },
        "enqueued",
      );
    }),
  };
}
