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

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^;"'`]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm;

/** The imports of a source text, with the line each starts on. */
export function importsOf(source: string): ImportSite[] {
  const sites: ImportSite[] = [];
  for (const match of source.matchAll(IMPORT)) {
    const specifier = match[1] ?? match[2] ?? match[3];
    if (specifier === undefined) continue;
    const at = match.index + match[0].indexOf(specifier);
    sites.push({ line: source.slice(0, at).split("\n").length, specifier });
  }
  return sites;
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
    for (const site of importsOf(read(file))) {
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
  };
  const problems = layeringViolations(Object.keys(planted), (path) => planted[path] ?? "");
  assert.deepEqual(problems, [
    "src/protocol/planted.ts:1: imports src/server/http_server.ts: protocol may not import server, a layer above it",
    "src/worker/planted.ts:2: imports src/client/follow.ts: worker and client are siblings and may not import each other",
    "src/store/planted.ts:1: imports src/telemetry/metrics.ts: store may not import telemetry, a layer above it",
  ]);
});
