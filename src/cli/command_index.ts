/**
 * What `airunner` knows about its subcommands before it loads any of them:
 * name, the one line `airunner --help` shows, the term's arguments, and how
 * to load the implementation. A command's module (and everything it
 * imports: the AWS SDK, SQLite, the worker, the server) is imported only
 * when that command runs, so `airunner get` does not pay for `airunner
 * server`. The literal `import()` specifiers keep them visible to `deno
 * compile`.
 *
 * This module imports nothing: `--version` and `--help` read it alone.
 * tests/cli/command_index_test.ts keeps it equal to the real commands.
 *
 * @module
 */
import type { CommandUnknownOpts } from "@commander-js/extra-typings";
import type { ExitCodeSink } from "./common_options.ts";
import type { CommandSpec } from "./command_spec.ts";

/** What a command's builder may need from the program around it. */
export interface CommandContext {
  readonly setExitCode: ExitCodeSink;
  /** The words after `--` (submit's job command line), if any. */
  readonly trailing: () => string[] | undefined;
  /** The whole command tree, read when `completion` runs. */
  readonly program: () => CommandUnknownOpts;
}

/** One subcommand, as `airunner --help` lists it. */
export interface CommandDescriptor {
  readonly name: string;
  /** Its description: the text `airunner --help` shows beside it. */
  readonly description: string;
  /** Whether it has options of its own (commander then shows `[options]`). */
  readonly hasOptions: boolean;
  /** Its arguments as the help shows them, such as `<job-id>`; "" for none. */
  readonly args: string;
  /** Imports the command's module and builds the real command. */
  readonly load: () => Promise<(context: CommandContext) => CommandUnknownOpts>;
  /**
   * For a command defined as a spec (command_spec.ts): imports its module
   * without commander, so that an ordinary command line runs with none.
   */
  readonly loadSpec?: () => Promise<(context: CommandContext) => CommandSpec>;
}

/** The loaders of a spec-defined command: the spec alone, or built into commander. */
function specLoaders(loadSpec: () => Promise<(context: CommandContext) => CommandSpec>) {
  return {
    loadSpec,
    load: async () => {
      const [spec, { commanderOf }] = await Promise.all([loadSpec(), import("./commander_of.ts")]);
      return (context: CommandContext) => commanderOf(spec(context));
    },
  };
}

/** The program's description, the first paragraph of `airunner --help`. */
export const PROGRAM_DESCRIPTION = "a job queue server, workers and a scriptable CLI in one binary";

/** The text after the command list of `airunner --help`. */
export const PROGRAM_HELP_AFTER = `
Quick start:
  airunner dev                                   # server + worker on this host
  airunner submit --follow -- echo hello         # in another shell

Run "airunner <command> --help" for a command's flags and examples.`;

/** Every subcommand, in the order `airunner --help` lists them. */
export const COMMANDS: readonly CommandDescriptor[] = [
  {
    name: "server",
    description: "serve the job queue API",
    hasOptions: true,
    args: "",
    load: async () => {
      const { serverCommand } = await import("./server.ts");
      return (c) => serverCommand(c.setExitCode);
    },
  },
  {
    name: "worker",
    description: "run jobs from a queue, or from several in order of preference",
    hasOptions: true,
    args: "",
    load: async () => {
      const { workerCommand } = await import("./worker.ts");
      return (c) => workerCommand(c.setExitCode);
    },
  },
  {
    name: "submit",
    description:
      "submit a job; prints its id (--follow streams its output, --wait waits; both exit with its code)",
    hasOptions: true,
    args: "[repository]",
    ...specLoaders(async () => (await import("./submit.ts")).submitSpec),
  },
  {
    name: "monitor",
    description:
      "watch one job: a header with its state above its live output; exits with its code",
    hasOptions: true,
    args: "<job-id>",
    load: async () => {
      const { monitorCommand } = await import("./monitor.ts");
      return (c) => monitorCommand(c.setExitCode);
    },
  },
  {
    name: "logs",
    description: "print a job's output (-f: follow it until the job ends, then exit with its code)",
    hasOptions: true,
    args: "[job-id...]",
    load: async () => {
      const { logsCommand } = await import("./logs.ts");
      return (c) => logsCommand(c.setExitCode);
    },
  },
  {
    name: "wait",
    description:
      "wait for jobs to end; prints a line per job as it ends, exits with the first failure",
    hasOptions: true,
    args: "<job-id...>",
    load: async () => {
      const { waitCommand } = await import("./wait.ts");
      return (c) => waitCommand(c.setExitCode);
    },
  },
  {
    name: "list",
    description: "list jobs, newest first",
    hasOptions: true,
    args: "",
    ...specLoaders(async () => (await import("./list.ts")).listSpec),
  },
  {
    name: "get",
    description: "show everything about one job",
    hasOptions: true,
    args: "<job-id>",
    ...specLoaders(async () => (await import("./get.ts")).getSpec),
  },
  {
    name: "cancel",
    description: "cancel a job (a running one is stopped by its worker within seconds)",
    hasOptions: true,
    args: "<job-id>",
    ...specLoaders(async () => (await import("./cancel.ts")).cancelSpec),
  },
  {
    name: "redrive",
    description: "put failed jobs that used every attempt back in their queue; prints each id",
    hasOptions: true,
    args: "",
    ...specLoaders(async () => (await import("./redrive.ts")).redriveSpec),
  },
  {
    name: "rerun",
    description: "submit a job again with the same parameters; prints the new id",
    hasOptions: true,
    args: "<job-id>",
    ...specLoaders(async () => (await import("./rerun.ts")).rerunSpec),
  },
  {
    name: "schedule",
    description: "run jobs on a cron schedule: add, list, get, pause, resume, delete, run",
    hasOptions: false,
    args: "",
    load: async () => {
      const { scheduleCommand } = await import("./schedule.ts");
      return (c) => scheduleCommand(c);
    },
  },
  {
    name: "token",
    description: "mint an API token, or make its signing keys (token keygen)",
    hasOptions: true,
    args: "",
    load: async () => {
      const { tokenCommand } = await import("./token.ts");
      return (c) => tokenCommand(c.setExitCode);
    },
  },
  {
    name: "orchestrator",
    description: "serve the job queue API on AWS SQS + DynamoDB (orchestrator init: create them)",
    hasOptions: true,
    args: "",
    load: async () => {
      const { orchestratorCommand } = await import("./orchestrator.ts");
      return (c) => orchestratorCommand(c.setExitCode);
    },
  },
  {
    name: "dev",
    description: "run a server and workers on this host (loopback only)",
    hasOptions: true,
    args: "",
    load: async () => {
      const { devCommand } = await import("./dev.ts");
      return (c) => devCommand(c.setExitCode);
    },
  },
  {
    name: "backup",
    description: "copy a sqlite store consistently, while its server runs",
    hasOptions: true,
    args: "",
    load: async () => {
      const { backupCommand } = await import("./backup.ts");
      return (c) => backupCommand(c.setExitCode);
    },
  },
  {
    name: "completion",
    description: "print a shell completion script",
    hasOptions: false,
    args: "<shell>",
    load: async () => {
      const { completionCommand } = await import("./completion.ts");
      return (c) => completionCommand(c.setExitCode, c.program);
    },
  },
];

/** `name` and its arguments as the command list of `airunner --help` shows them. */
export function commandTerm(command: CommandDescriptor): string {
  return [command.name, command.hasOptions ? "[options]" : "", command.args]
    .filter((part) => part !== "").join(" ");
}

/**
 * The command `argv` runs, or undefined when it names none: the first word
 * that is not a flag (airunner's own flags take no values), or the word
 * after `help`. Unknown names are left to commander, which explains them.
 */
export function commandOf(argv: readonly string[]): CommandDescriptor | undefined {
  const words = argv.filter((a) => !a.startsWith("-"));
  const name = words[0] === "help" ? words[1] : words[0];
  return COMMANDS.find((c) => c.name === name);
}
