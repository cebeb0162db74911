/**
 * Keeps modules and functions small enough to read in one sitting: no file
 * under src/ over 600 lines, no function (declaration, expression, arrow or
 * method) over 120 lines. Functions are found by Deno's own parser, through a
 * lint plugin run on each file.
 */
import assert from "node:assert/strict";
import { ROOT, sourceFiles } from "./source_files.ts";

export const MAX_FILE_LINES = 600;
export const MAX_FUNCTION_LINES = 120;

const lineOf = (source: string, offset: number) => source.slice(0, offset).split("\n").length;

function reportLongFunctions(source: string): Deno.lint.Plugin {
  return {
    name: "size",
    rules: {
      "long-function": {
        create(context) {
          const check = (node: Deno.lint.Node & { range: Deno.lint.Range }) => {
            const lines = lineOf(source, node.range[1]) - lineOf(source, node.range[0]) + 1;
            if (lines > MAX_FUNCTION_LINES) context.report({ node, message: `${lines}` });
          };
          return {
            FunctionDeclaration: check,
            FunctionExpression: check,
            ArrowFunctionExpression: check,
          };
        },
      },
    },
  };
}

/** "path:line: N lines" for each function of `source` over the limit. */
export function longFunctions(path: string, source: string): string[] {
  return Deno.lint.runPlugin(reportLongFunctions(source), path, source).map((d) =>
    `${path}:${
      lineOf(source, d.range[0])
    }: a function of ${d.message} lines (limit ${MAX_FUNCTION_LINES})`
  );
}

const files = sourceFiles("src");

Deno.test(`no file under src/ is over ${MAX_FILE_LINES} lines`, () => {
  const long = files.flatMap((path) => {
    const lines = Deno.readTextFileSync(`${ROOT}${path}`).split("\n").length - 1;
    return lines > MAX_FILE_LINES ? [`${path}: ${lines} lines`] : [];
  });
  assert.deepEqual(long, []);
});

Deno.test(`no function under src/ is over ${MAX_FUNCTION_LINES} lines`, () => {
  const long = files.flatMap((path) =>
    longFunctions(path, Deno.readTextFileSync(`${ROOT}${path}`))
  );
  assert.deepEqual(long, []);
});

Deno.test("the size check finds a long arrow function and a long method", () => {
  const body = "  x++;\n".repeat(MAX_FUNCTION_LINES);
  const source = `const f = () => {\n${body}};\nclass C {\n  m() {\n${body}  }\n  short() {}\n}\n`;
  assert.deepEqual(longFunctions("planted.ts", source), [
    `planted.ts:1: a function of ${MAX_FUNCTION_LINES + 2} lines (limit ${MAX_FUNCTION_LINES})`,
    `planted.ts:${MAX_FUNCTION_LINES + 4}: a function of ${
      MAX_FUNCTION_LINES + 2
    } lines (limit ${MAX_FUNCTION_LINES})`,
  ]);
});
