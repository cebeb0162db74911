/**
 * The `airunner` command tree and its entry function. Subcommands parse
 * their flags and call shared modules; every path ends in an exit code that
 * {@link runCli} returns, so nothing calls `Deno.exit` deep inside.
 *
 * Start-up is paid on every call from a shell loop, so this module loads
 * only what the command being run uses: `--version` and `--help` print
 * without commander, and the tree holds the real module of the one command
 * run (every one for `completion`, which lists them all) and a stand-in
 * with its name and description for each of the others (see
 * command_index.ts).
 *
 * @module
 */
import type { CommandUnknownOpts, Help } from "@commander-js/extra-typings";
import { versionText } from "../version.ts";
import {
  type CommandContext,
  type CommandDescriptor,
  commandOf,
  COMMANDS,
  commandTerm,
  PROGRAM_DESCRIPTION,
  PROGRAM_HELP_AFTER,
} from "./command_index.ts";
import { parseFast } from "./command_spec.ts";
import { ExitCode } from "./exit_code_numbers.ts";
import { rootHelpText, stdoutHelpWidth } from "./root_help.ts";

/** Runs `airunner` with `argv` (without the program name); returns the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    await writeStdout(`${versionText()}\n`);
    return ExitCode.Ok;
  }
  if (argv.length === 1 && (argv[0] === "--help" || argv[0] === "-h")) {
    await writeStdout(rootHelpText(COMMANDS, stdoutHelpWidth()));
    return ExitCode.Ok;
  }

  // `submit ... -- COMMAND ARGS` (and `schedule add ... --`): the words
  // after the first "--" are the job's command line, never airunner's flags.
  let trailing: string[] | undefined;
  let args = [...argv];
  const dashes = args.indexOf("--");
  if ((args[0] === "submit" || (args[0] === "schedule" && args[1] === "add")) && dashes >= 0) {
    trailing = args.slice(dashes + 1);
    args = args.slice(0, dashes);
  }

  let exitCode: number = ExitCode.Ok;
  const command = commandOf(args);
  const setExitCode = (code: number) => exitCode = code;
  if (command?.loadSpec !== undefined && args[0] === command.name) {
    // The ordinary command line of a client command runs without commander.
    const spec = (await command.loadSpec())({
      setExitCode,
      trailing: () => trailing,
      program: () => {
        throw new Error("internal error: the fast path has no command tree");
      },
    });
    const parsed = parseFast(spec, args.slice(1), (name) => Deno.env.get(name));
    if (parsed !== undefined) {
      await spec.run(parsed);
      return exitCode;
    }
  }
  const { program, CommanderError } = await buildProgram({
    setExitCode,
    trailing: () => trailing,
    // completion lists every command's flags, so it needs them all.
    load: command?.name === "completion" ? COMMANDS : command === undefined ? [] : [command],
  });
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version end with code 0; every other parse error is a usage error.
      return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    throw error;
  }
  return exitCode;
}

/** Options of {@link buildProgram}. */
export interface ProgramOptions {
  readonly setExitCode: CommandContext["setExitCode"];
  readonly trailing: CommandContext["trailing"];
  /** The commands to load for real; the others get stand-ins. */
  readonly load: readonly CommandDescriptor[];
}

/**
 * The command tree, with commander loaded on demand. A stand-in has the
 * name and description of its command, which is all the root's help, its
 * errors and its suggestions read; the help's term comes from the index.
 */
export async function buildProgram(options: ProgramOptions) {
  const { Command, CommanderError, Help: HelpClass } = await import(
    "@commander-js/extra-typings"
  );
  const builders = await Promise.all(options.load.map((c) => c.load()));
  const terms = new Map(COMMANDS.map((c) => [c.name, commandTerm(c)]));
  const defaultTerm = HelpClass.prototype.subcommandTerm;
  const root = new Command("airunner")
    .description(PROGRAM_DESCRIPTION)
    .version(versionText(), "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .showSuggestionAfterError()
    // A subcommand's flags belong to it (orchestrator init --jobs-table X).
    .enablePositionalOptions()
    .configureHelp({
      subcommandTerm(this: Help, sub: CommandUnknownOpts) {
        return terms.get(sub.name()) ?? defaultTerm.call(this, sub);
      },
    })
    .addHelpText("after", PROGRAM_HELP_AFTER);
  const context: CommandContext = {
    setExitCode: options.setExitCode,
    trailing: options.trailing,
    program: () => root,
  };
  const loaded = new Map(options.load.map((c, i) => [c.name, builders[i]!(context)]));
  const commands = COMMANDS.map((c) =>
    loaded.get(c.name) ??
      new Command(c.name).description(c.description).action(() => {
        throw new Error(`internal error: airunner ${c.name} ran without being loaded`);
      })
  );
  for (const command of commands) root.addCommand(command);
  // Subcommands (token keygen, orchestrator init) report errors the same way.
  const nested = commands.flatMap((c) => c.commands);
  for (const command of [root, ...commands, ...nested]) {
    command.exitOverride().configureOutput({
      outputError: (message, write) => write(`airunner: error: ${oneLineUsageError(message)}\n`),
    });
  }
  return { program: root, CommanderError };
}

/** Writes all of `text` to stdout. */
async function writeStdout(text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
}

/**
 * Commander's parse error as one line: without its "error: " prefix, with a
 * "(Did you mean x?)" suggestion folded into the line as the hint.
 */
export function oneLineUsageError(message: string): string {
  return message
    .replace(/^error: /, "")
    .replace(/\s*\n\(Did you mean (.+)\?\)/, " (did you mean $1?)")
    .trim();
}
