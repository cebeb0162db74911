/**
 * A subcommand as data: its arguments, its options and its action. One
 * spec feeds two parsers: commander (commander_of.ts), for help, errors,
 * suggestions and completion, and {@link parseFast}, which handles the
 * ordinary command line of a client command without loading commander.
 *
 * Why: commander runs on Deno's Node layer, and loading it costs ~45 ms
 * per call (`airunner get` 128 ms with it, ~85 ms without, 2-core machine,
 * p50 of 11; an empty script is 59 ms), paid on every call of a shell loop.
 * parseFast only takes a command line it reads exactly as commander would
 * (tests/cli/fast_parse_test.ts holds the two equal) and hands everything
 * else to commander, so errors and help stay commander's.
 *
 * Imports nothing at run time.
 *
 * @module
 */

/** One option, the way commander's `new Option(flags, description)` takes it. */
export interface OptionSpec {
  /** `--name <value>` for an option with a value, `--name` for a flag; no short form. */
  readonly flags: string;
  readonly description: string;
  /** An environment variable that sets it when the command line does not. */
  readonly env?: string;
  readonly defaultValue?: string | boolean | readonly string[];
  /** The values it accepts (anything else is a usage error). */
  readonly choices?: readonly string[];
  /** Each use adds its value to a list (defaults to []). */
  readonly repeatable?: true;
}

/** One positional argument: `<job-id>` (required) or `[repository]`. */
export interface ArgumentSpec {
  readonly name: string;
  readonly description: string;
  readonly required: boolean;
}

/** What parsing a command line gives the action. */
export interface ParsedCommandLine {
  /** The positional arguments in order, undefined for an optional one left out. */
  readonly args: readonly (string | undefined)[];
  /** The options by their camel-cased names, as commander's `opts()` holds them. */
  readonly opts: Readonly<Record<string, unknown>>;
}

/** A subcommand. */
export interface CommandSpec {
  readonly name: string;
  readonly description: string;
  /** The usage line after the command's name, when commander's own is not right. */
  readonly usage?: string;
  readonly arguments: readonly ArgumentSpec[];
  readonly options: readonly OptionSpec[];
  /** Text after the help's option list (examples). */
  readonly helpAfter?: string;
  readonly run: (parsed: ParsedCommandLine) => Promise<void>;
}

/** An option's name without dashes and its value, as parseFast reads its flags. */
interface OptionShape {
  readonly spec: OptionSpec;
  /** The key in opts: `--page-size` is `pageSize`. */
  readonly key: string;
  readonly takesValue: boolean;
  /**
   * `--no-thing`: commander's negated flag, which sets `thing` to false
   * when given and, defined alone, to true when not.
   */
  readonly negated: boolean;
}

/** `--page-size <n>` -> `--page-size`, `pageSize`, takes a value. */
export function optionShape(spec: OptionSpec): OptionShape {
  // A short form ("-s, --server") would need commander's rules for it; specs have none.
  if (!/^--[a-z][a-z0-9-]*( [<[].+[>\]])?$/.test(spec.flags)) {
    throw new Error(
      `internal error: option spec "${spec.flags}" is not "--name" or "--name <value>"`,
    );
  }
  const [long = "", value] = spec.flags.split(" ");
  const negated = value === undefined && long.startsWith("--no-");
  const key = long.replace(negated ? /^--no-/ : /^--/, "")
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  return { spec, key, takesValue: value !== undefined, negated };
}

/**
 * The arguments and options of `argv` (the words after the command's name)
 * exactly as commander would hand them to the action, or undefined when the
 * line holds anything this parser does not read exactly as commander does
 * (help, an unknown or short flag, a value that starts with a dash or is
 * missing, a choice not allowed, `--`, a missing or an extra argument).
 * Pure: `env` is the environment to read.
 */
export function parseFast(
  spec: CommandSpec,
  argv: readonly string[],
  env: (name: string) => string | undefined,
): ParsedCommandLine | undefined {
  const shapes = new Map(spec.options.map((o) => [o.flags.split(" ")[0]!, optionShape(o)]));
  const given = new Map<string, unknown>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (!word.startsWith("-")) {
      args.push(word);
      continue;
    }
    if (!word.startsWith("--") || word === "--") return undefined;
    const equals = word.indexOf("=");
    const flag = equals < 0 ? word : word.slice(0, equals);
    const shape = shapes.get(flag);
    if (shape === undefined) return undefined;
    let value: string | boolean = !shape.negated;
    if (shape.takesValue) {
      const next = equals < 0 ? argv[++i] : word.slice(equals + 1);
      if (next === undefined || (equals < 0 && next.startsWith("-"))) return undefined;
      value = next;
    } else if (equals >= 0) {
      return undefined;
    }
    if (!setOption(given, shape, value)) return undefined;
  }
  if (args.length > spec.arguments.length) return undefined;
  if (spec.arguments.some((a, i) => a.required && args[i] === undefined)) return undefined;

  const opts: Record<string, unknown> = {};
  for (const shape of shapes.values()) {
    if (shape.spec.defaultValue !== undefined) {
      const d = shape.spec.defaultValue;
      opts[shape.key] = Array.isArray(d) ? [...d] : d;
    } else if (shape.negated) {
      opts[shape.key] = true;
    }
    // The environment fills what the command line left out.
    const fromEnv = shape.spec.env === undefined ? undefined : env(shape.spec.env);
    if (fromEnv !== undefined && !given.has(shape.key)) {
      if (!setOption(given, shape, shape.takesValue ? fromEnv : !shape.negated)) return undefined;
    }
  }
  for (const [key, value] of given) opts[key] = value;
  return { args: spec.arguments.map((_, i) => args[i]), opts };
}

/** Records one use of an option; false for a value its choices refuse. */
function setOption(
  given: Map<string, unknown>,
  shape: OptionShape,
  value: string | boolean,
): boolean {
  const { choices, repeatable } = shape.spec;
  if (typeof value === "string" && choices !== undefined && !choices.includes(value)) return false;
  if (repeatable === true) {
    given.set(shape.key, [...(given.get(shape.key) as string[] | undefined ?? []), value]);
  } else {
    given.set(shape.key, value);
  }
  return true;
}
