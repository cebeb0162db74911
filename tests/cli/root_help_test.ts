/**
 * `airunner --help` is printed without commander (src/cli/root_help.ts) and
 * the command tree starts with stand-ins for the commands not run
 * (src/cli/command_index.ts). Both must say exactly what commander says
 * with every real command loaded, at every width a terminal may have.
 */
import assert from "node:assert/strict";
import { COMMANDS, commandTerm } from "../../src/cli/command_index.ts";
import { buildProgram } from "../../src/cli/program.ts";
import { rootHelpText } from "../../src/cli/root_help.ts";

const WIDTHS = [20, 40, 50, 60, 70, 79, 80, 81, 90, 100, 120, 160, 250];

/** The root help commander prints for a tree built with `load`, at `width` columns. */
async function commanderHelp(load: typeof COMMANDS, width: number): Promise<string> {
  const { program } = await buildProgram({
    setExitCode: () => {},
    trailing: () => undefined,
    load,
  });
  let text = "";
  program.configureOutput({ getOutHelpWidth: () => width, writeOut: (s) => text += s });
  program.outputHelp();
  return text;
}

Deno.test("the fast --help is commander's help with every command loaded, at every width", async () => {
  for (const width of WIDTHS) {
    assert.equal(rootHelpText(COMMANDS, width), await commanderHelp(COMMANDS, width), `${width}`);
  }
});

Deno.test("a tree of stand-ins prints the same root help as the real commands", async () => {
  for (const width of [60, 80, 120]) {
    assert.equal(await commanderHelp([], width), await commanderHelp(COMMANDS, width), `${width}`);
  }
});

Deno.test("the command index matches the real commands", async () => {
  const { program } = await buildProgram({
    setExitCode: () => {},
    trailing: () => undefined,
    load: COMMANDS,
  });
  const real = program.commands.map((c) => ({
    name: c.name(),
    description: c.description(),
    term: [
      c.name(),
      c.options.length > 0 ? "[options]" : "",
      ...c.registeredArguments.map((a) =>
        a.required
          ? `<${a.name()}${a.variadic ? "..." : ""}>`
          : `[${a.name()}${a.variadic ? "..." : ""}]`
      ),
    ].filter((p) => p !== "").join(" "),
  }));
  assert.deepEqual(
    real,
    COMMANDS.map((c) => ({ name: c.name, description: c.description, term: commandTerm(c) })),
  );
});
