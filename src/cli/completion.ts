/**
 * `airunner completion bash|zsh|fish`: a shell completion script for the
 * commands and flags of this airunner, made from the command tree itself so
 * it never lists a flag that does not exist.
 *
 * @module
 */
import { Argument, Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import type { ExitCodeSink } from "./common_options.ts";

/** Shells with a completion script. */
export const SHELLS = ["bash", "zsh", "fish"] as const;

interface CommandSpec {
  readonly name: string;
  readonly description: string;
  readonly flags: readonly string[];
}

/** Builds the `completion` command; `program` is the whole tree, read when it runs. */
export function completionCommand(setExitCode: ExitCodeSink, program: () => CommandUnknownOpts) {
  return new Command("completion")
    .description("print a shell completion script")
    .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(SHELLS))
    .addHelpText(
      "after",
      "\nExamples:\n  airunner completion bash > ~/.local/share/bash-completion/completions/airunner\n  airunner completion fish > ~/.config/fish/completions/airunner.fish",
    )
    .action((shell) => {
      console.log(completionScript(shell, specsOf(program())));
      setExitCode(0);
    });
}

function specsOf(program: CommandUnknownOpts): CommandSpec[] {
  return program.commands.map((c) => ({
    name: c.name(),
    description: c.description(),
    flags: c.options.flatMap((o) => [o.long, o.short].filter((f): f is string => f !== undefined)),
  }));
}

/** The completion script for `shell` (pure). */
export function completionScript(shell: typeof SHELLS[number], commands: CommandSpec[]): string {
  const names = commands.map((c) => c.name).join(" ");
  switch (shell) {
    case "bash":
      return [
        "# airunner completion for bash: source this file, or put it in",
        "# ~/.local/share/bash-completion/completions/airunner",
        "_airunner() {",
        '  local cur="${COMP_WORDS[COMP_CWORD]}" cmd="${COMP_WORDS[1]}"',
        '  if [ "$COMP_CWORD" -eq 1 ]; then',
        `    COMPREPLY=($(compgen -W "${names} --help --version" -- "$cur"))`,
        "    return",
        "  fi",
        '  case "$cmd" in',
        ...commands.map((c) =>
          `    ${c.name}) COMPREPLY=($(compgen -W "${c.flags.join(" ")} --help" -- "$cur")) ;;`
        ),
        "  esac",
        "}",
        "complete -o default -F _airunner airunner",
      ].join("\n");
    case "zsh":
      return [
        "#compdef airunner",
        "# airunner completion for zsh: put this file in a directory of $fpath as _airunner",
        "_airunner() {",
        "  local -a commands",
        "  commands=(",
        ...commands.map((c) =>
          `    '${c.name}:${c.description.replaceAll("'", "'\\''").replaceAll(":", "\\:")}'`
        ),
        "  )",
        "  if (( CURRENT == 2 )); then",
        "    _describe 'command' commands",
        "    return",
        "  fi",
        "  case ${words[2]} in",
        ...commands.map((c) => `    ${c.name}) compadd -- ${c.flags.join(" ")} --help ;;`),
        "  esac",
        "}",
        'if [ "$funcstack[1]" = "_airunner" ]; then _airunner "$@"; else compdef _airunner airunner; fi',
      ].join("\n");
    case "fish":
      return [
        "# airunner completion for fish: put this file in ~/.config/fish/completions/airunner.fish",
        `complete -c airunner -f -n '__fish_use_subcommand' -a '${names}'`,
        ...commands.flatMap((c) => [
          `complete -c airunner -f -n '__fish_use_subcommand' -a ${c.name} -d '${
            c.description.replaceAll("'", "\\'")
          }'`,
          ...c.flags.filter((f) => f.startsWith("--")).map((f) =>
            `complete -c airunner -n '__fish_seen_subcommand_from ${c.name}' -l ${f.slice(2)}`
          ),
        ]),
      ].join("\n");
  }
}
