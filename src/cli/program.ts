/**
 * The `airunner` command tree and its entry function. Subcommands parse
 * their flags and call shared modules; every path ends in an exit code that
 * {@link runCli} returns, so nothing calls `Deno.exit` deep inside.
 *
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { versionText } from "../version.ts";
import { backupCommand } from "./backup.ts";
import { cancelCommand } from "./cancel.ts";
import { completionCommand } from "./completion.ts";
import { getCommand } from "./get.ts";
import { logsCommand } from "./logs.ts";
import { devCommand } from "./dev.ts";
import { ExitCode } from "./exit_codes.ts";
import { listCommand } from "./list.ts";
import { monitorCommand } from "./monitor.ts";
import { orchestratorCommand } from "./orchestrator.ts";
import { tokenCommand } from "./token.ts";
import { serverCommand } from "./server.ts";
import { submitCommand } from "./submit.ts";
import { workerCommand } from "./worker.ts";

/** Runs `airunner` with `argv` (without the program name); returns the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  // `submit ... -- COMMAND ARGS` : the words after the first "--" are the
  // job's command line, never airunner's flags.
  let trailing: string[] | undefined;
  let args = [...argv];
  const dashes = args.indexOf("--");
  if (args[0] === "submit" && dashes >= 0) {
    trailing = args.slice(dashes + 1);
    args = args.slice(0, dashes);
  }

  let exitCode: number = ExitCode.Ok;
  const setExitCode = (code: number) => exitCode = code;
  const program = new Command("airunner")
    .description("a job queue server, workers and a scriptable CLI in one binary")
    .version(versionText(), "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .showSuggestionAfterError()
    // A subcommand's flags belong to it (orchestrator init --jobs-table X).
    .enablePositionalOptions()
    .addHelpText(
      "after",
      `
Quick start:
  airunner dev                                   # server + worker on this host
  airunner submit --follow -- echo hello         # in another shell

Run "airunner <command> --help" for a command's flags and examples.`,
    );
  const commands = [
    serverCommand(setExitCode),
    workerCommand(setExitCode),
    submitCommand(setExitCode, () => trailing),
    monitorCommand(setExitCode),
    logsCommand(setExitCode),
    listCommand(setExitCode),
    getCommand(setExitCode),
    cancelCommand(setExitCode),
    tokenCommand(setExitCode),
    orchestratorCommand(setExitCode),
    devCommand(setExitCode),
    backupCommand(setExitCode),
    completionCommand(setExitCode, () => program),
  ];
  for (const command of commands) program.addCommand(command);
  // Subcommands (token keygen, orchestrator init) report errors the same way.
  const nested = commands.flatMap((c) => c.commands);
  for (const command of [program, ...commands, ...nested]) {
    command.exitOverride().configureOutput({
      outputError: (message, write) => write(`airunner: error: ${oneLineUsageError(message)}\n`),
    });
  }
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
