/**
 * `airunner --help` without commander: the same text, byte for byte, made
 * from the command index. Loading commander costs about 45 ms (it pulls in
 * Deno's node:fs, node:child_process and node:process layers), more than
 * the whole budget of `--help`; tests/cli/root_help_test.ts compares this
 * with commander's own output at many widths, so the two cannot drift.
 *
 * The layout follows commander's Help.formatHelp: items indented by 2,
 * terms padded to the longest, 2 spaces, descriptions wrapped at the help
 * width (80, or the terminal's columns) unless fewer than 40 columns are
 * left for them.
 *
 * @module
 */
import {
  type CommandDescriptor,
  commandTerm,
  PROGRAM_DESCRIPTION,
  PROGRAM_HELP_AFTER,
} from "./command_index.ts";

/** Commander's narrowest column it still wraps descriptions into. */
const MIN_WIDTH_TO_WRAP = 40;

/** The root options, as the program declares them. */
const ROOT_OPTIONS: readonly (readonly [string, string])[] = [
  ["-V, --version", "print the version"],
  ["-h, --help", "show help"],
];

/** The text `airunner --help` prints, for a help width of `helpWidth` columns (pure). */
export function rootHelpText(commands: readonly CommandDescriptor[], helpWidth = 80): string {
  const commandItems: (readonly [string, string])[] = [
    ...commands.map((c) => [commandTerm(c), c.description] as const),
    ["help [command]", "display help for command"],
  ];
  const termWidth = Math.max(...[...ROOT_OPTIONS, ...commandItems].map(([term]) => term.length));
  const item = ([term, description]: readonly [string, string]) =>
    formatItem(term, termWidth, description, helpWidth);
  return [
    "Usage: airunner [options] [command]",
    "",
    boxWrap(PROGRAM_DESCRIPTION, helpWidth),
    "",
    "Options:",
    ...ROOT_OPTIONS.map(item),
    "",
    "Commands:",
    ...commandItems.map(item),
    "",
  ].join("\n") + PROGRAM_HELP_AFTER + "\n";
}

/** The help width commander uses for stdout: the terminal's columns, else 80. */
export function stdoutHelpWidth(): number {
  if (!Deno.stdout.isTerminal()) return 80;
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 80;
  }
}

function formatItem(term: string, termWidth: number, description: string, helpWidth: number) {
  const indent = "  ";
  const spacer = 2;
  const remaining = helpWidth - termWidth - spacer - indent.length;
  const body = remaining < MIN_WIDTH_TO_WRAP
    ? description
    : boxWrap(description, remaining).replace(/\n/g, "\n" + " ".repeat(termWidth + spacer));
  return indent + term.padEnd(termWidth) + " ".repeat(spacer) + body.replace(/\n/g, `\n${indent}`);
}

/** Wraps `text` at whitespace into lines of at most `width` (commander's boxWrap). */
function boxWrap(text: string, width: number): string {
  if (width < MIN_WIDTH_TO_WRAP) return text;
  const lines: string[] = [];
  for (const line of text.split(/\r\n|\n/)) {
    const chunks = line.match(/[\s]*[^\s]+/g);
    if (chunks === null) {
      lines.push("");
      continue;
    }
    let current = chunks[0]!;
    for (const chunk of chunks.slice(1)) {
      if (current.length + chunk.length <= width) {
        current += chunk;
        continue;
      }
      lines.push(current);
      current = chunk.trimStart();
    }
    lines.push(current);
  }
  return lines.join("\n");
}
