/**
 * Keeps the layers of tests/architecture/layers.ts: reads every import of
 * main.ts and src/ and fails on one that points up or sideways, naming the
 * file and line.
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { forbiddenImport, layerOf } from "./layers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A relative import (static, re-export or dynamic) of one source text. */
export interface ImportSite {
  readonly line: number;
  readonly specifier: string;
}

const lineOf = (source: string, offset: number) => source.slice(0, offset).split("\n").length;

/** A string literal's value, or undefined for any other expression. */
function literalValue(node: Deno.lint.Node | null | undefined): string | undefined {
  if (node?.type === "Literal" && typeof node.value === "string") return node.value;
  if (node?.type === "TemplateLiteral" && node.expressions.length === 0) {
    return node.quasis[0]?.cooked ?? undefined;
  }
  return undefined;
}

/** Reports every module specifier of a file, found by Deno's own parser. */
const importFinder: Deno.lint.Plugin = {
  name: "layers",
  rules: {
    imports: {
      create(context) {
        const report = (node: Deno.lint.Node, source: Deno.lint.Node | null | undefined) => {
          const specifier = literalValue(source);
          // A computed specifier cannot be checked, so it is refused outright.
          context.report({ node: source ?? node, message: specifier ?? "\0computed" });
        };
        return {
          ImportDeclaration: (node) => report(node, node.source),
          ExportAllDeclaration: (node) => report(node, node.source),
          ExportNamedDeclaration: (node) => {
            if (node.source !== null) report(node, node.source);
          },
          ImportExpression: (node) => report(node, node.source),
          TSImportType: (node) => {
            const argument = node.argument;
            report(node, argument.type === "TSLiteralType" ? argument.literal : argument);
          },
        };
      },
    },
  },
};

/** The imports of a source text (static, re-export, dynamic, type), with the line of each. */
export function importsOf(path: string, source: string): ImportSite[] {
  return Deno.lint.runPlugin(importFinder, path, source).map((d) => ({
    line: lineOf(source, d.range[0]),
    specifier: d.message,
  }));
}

/**
 * Every import of `files` (repository-relative) that breaks the layering, as
 * "file:line: message" lines. `read` supplies each file's text.
 */
export function layeringViolations(
  files: readonly string[],
  read: (path: string) => string,
): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    if (from === undefined) {
      problems.push(`${file}: belongs to no layer; name it in tests/architecture/layers.ts`);
      continue;
    }
    for (const site of importsOf(file, read(file))) {
      if (site.specifier === "\0computed") {
        problems.push(
          `${file}:${site.line}: imports a computed specifier, which no check can follow`,
        );
        continue;
      }
      if (!site.specifier.startsWith(".")) continue;
      const target = relative(ROOT, new URL(site.specifier, `file://${ROOT}${file}`).pathname);
      const to = layerOf(target);
      if (to === undefined) {
        problems.push(`${file}:${site.line}: imports ${target}, which belongs to no layer`);
        continue;
      }
      const why = forbiddenImport(from, to);
      if (why !== undefined) problems.push(`${file}:${site.line}: imports ${target}: ${why}`);
    }
  }
  return problems;
}

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(`${ROOT}${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...sourceFiles(path));
    else if (path.endsWith(".ts")) files.push(path);
  }
  return files;
}

const read = (path: string) => Deno.readTextFileSync(`${ROOT}${path}`);

Deno.test("every import in main.ts and src/ points down the layers", () => {
  const files = ["main.ts", ...sourceFiles("src")];
  assert.ok(files.length > 50, `only ${files.length} files found`);
  assert.deepEqual(layeringViolations(files, read), []);
});

Deno.test("the layering check names a planted upward or sideways import", () => {
  const planted: Record<string, string> = {
    "src/protocol/planted.ts": 'import { x } from "../server/http_server.ts";\n',
    "src/worker/planted.ts": 'const y = 1;\nexport { z } from "../client/follow.ts";\n',
    "src/store/planted.ts": 'await import("../telemetry/metrics.ts");\n',
    "src/cli/planted.ts": 'import { ok } from "../protocol/limits.ts";\n',
    "src/client/planted.ts": [
      "import {",
      "  // a comment that isn't closed by a quote",
      "  x,",
      '} from "../server/limits.ts";',
      'type T = typeof import("../worker/worker.ts");',
      'export * as all from "../server/x.ts";',
      "await import(`../server/y.ts`);",
      "await import(name);",
    ].join("\n"),
  };
  const problems = layeringViolations(Object.keys(planted), (path) => planted[path] ?? "");
  assert.deepEqual(problems, [
    "src/protocol/planted.ts:1: imports src/server/http_server.ts: protocol may not import server, a layer above it",
    "src/worker/planted.ts:2: imports src/client/follow.ts: worker and client are siblings and may not import each other",
    "src/store/planted.ts:1: imports src/telemetry/metrics.ts: store may not import telemetry, a layer above it",
    "src/client/planted.ts:4: imports src/server/limits.ts: client and server are siblings and may not import each other",
    "src/client/planted.ts:5: imports src/worker/worker.ts: client and worker are siblings and may not import each other",
    "src/client/planted.ts:6: imports src/server/x.ts: client and server are siblings and may not import each other",
    "src/client/planted.ts:7: imports src/server/y.ts: client and server are siblings and may not import each other",
    "src/client/planted.ts:8: imports a computed specifier, which no check can follow",
  ]);
});
