/**
 * Commander commands and options built from specs (command_spec.ts): what
 * help, parse errors, suggestions and completion read. A spec's command
 * line that parseFast declines comes here, so it reads exactly as before.
 *
 * @module
 */
import { Command, type CommandUnknownOpts, Option } from "@commander-js/extra-typings";
import type { CommandSpec, OptionSpec, ParsedCommandLine } from "./command_spec.ts";
import { optionShape } from "./command_spec.ts";

/** The commander Option of `spec`. */
export function optionOf(spec: OptionSpec): Option {
  const option = new Option(spec.flags, spec.description);
  if (spec.choices !== undefined) option.choices(spec.choices);
  if (spec.env !== undefined) option.env(spec.env);
  if (spec.repeatable === true) {
    option.argParser((value: string, previous: string[]) => [...previous, value]);
  }
  if (spec.defaultValue !== undefined) option.default(spec.defaultValue);
  return option;
}

/** What extra-typings would infer for `spec` built by hand: its flags, default and choices. */
export type OptionOf<S extends OptionSpec> = Option<
  S["flags"],
  undefined,
  S extends { readonly defaultValue: infer D } ? D : undefined,
  undefined,
  false,
  S extends { readonly choices: readonly (infer C)[] } ? C : undefined
>;

/** {@link optionOf}, typed for a spec declared `as const`, so commands keep typed opts. */
export function typedOptionOf<const S extends OptionSpec>(spec: S): OptionOf<S> {
  return optionOf(spec) as unknown as OptionOf<S>;
}

/** The commander Command of `spec`; its action runs the spec's. */
export function commanderOf(spec: CommandSpec): CommandUnknownOpts {
  const command = new Command(spec.name).description(spec.description);
  if (spec.usage !== undefined) command.usage(spec.usage);
  for (const a of spec.arguments) {
    command.argument(a.required ? `<${a.name}>` : `[${a.name}]`, a.description);
  }
  for (const o of spec.options) command.addOption(optionOf(o));
  if (spec.helpAfter !== undefined) command.addHelpText("after", spec.helpAfter);
  const keys = spec.options.map((o) => optionShape(o).key);
  command.action(async (...params: unknown[]) => {
    const args = params.slice(0, spec.arguments.length) as (string | undefined)[];
    const all = params[spec.arguments.length] as Record<string, unknown>;
    // Only the spec's own options, as parseFast gives them.
    const opts = Object.fromEntries(keys.filter((k) => k in all).map((k) => [k, all[k]]));
    const parsed: ParsedCommandLine = { args, opts };
    await spec.run(parsed);
  });
  return command as unknown as CommandUnknownOpts;
}
