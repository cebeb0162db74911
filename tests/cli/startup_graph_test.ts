/**
 * What each client command loads when it starts: the static module graph
 * (`deno info --json`) of the program's entry plus the command's module,
 * following code imports (not type-only ones, which Deno strips, nor
 * dynamic ones, which load only when they run). A client command that
 * reaches the AWS SDK, node:sqlite, the worker or the server pays for them
 * on every call from a shell loop; `--version` and `--help` load no npm
 * package at all.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The commands people run against a server, in loops and prompts. */
const CLIENT_COMMANDS = ["submit", "get", "list", "cancel", "logs", "monitor", "wait", "schedule"];

/** What `deno info --json` says, as far as this test reads it. */
interface DenoInfo {
  readonly roots: string[];
  readonly redirects: Record<string, string>;
  readonly modules: {
    readonly specifier: string;
    readonly kind?: string;
    readonly npmPackage?: string;
    readonly dependencies?: {
      readonly code?: { readonly specifier: string };
      readonly isDynamic?: boolean;
    }[];
  }[];
  readonly npmPackages: Record<string, { readonly name: string; readonly dependencies: string[] }>;
}

/** What a graph reaches at start-up: local files, node: built-ins and npm package names. */
interface Reach {
  readonly files: string[];
  readonly builtins: string[];
  readonly npm: string[];
}

/** The modules `info`'s roots load before they run, and the npm packages under them (pure). */
export function staticReach(info: DenoInfo): Reach {
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const packages = new Set<string>();
  const pending = [...info.roots];
  while (pending.length > 0) {
    const specifier = pending.pop()!;
    const resolved = info.redirects[specifier] ?? specifier;
    if (seen.has(resolved)) continue;
    seen.add(resolved);
    const module = modules.get(resolved);
    if (module?.npmPackage !== undefined) packages.add(module.npmPackage);
    for (const dep of module?.dependencies ?? []) {
      if (dep.code !== undefined && dep.isDynamic !== true) pending.push(dep.code.specifier);
    }
  }
  // npm packages bring their own dependencies along.
  const npm = new Set<string>();
  const queue = [...packages];
  while (queue.length > 0) {
    const id = queue.pop()!;
    const pkg = info.npmPackages[id];
    if (pkg === undefined || npm.has(pkg.name)) continue;
    npm.add(pkg.name);
    queue.push(...pkg.dependencies);
  }
  const all = [...seen];
  return {
    files: all.filter((s) => s.startsWith("file:")).map((s) => s.slice(`file://${ROOT}`.length))
      .sort(),
    builtins: all.filter((s) => s.startsWith("node:")).sort(),
    npm: [...npm].sort(),
  };
}

/** Why `reach` is too much for a client command, one line per reason (pure). */
export function clientCommandProblems(reach: Reach): string[] {
  return [
    ...reach.npm.filter((name) => name.startsWith("@aws-sdk/")).map((n) => `loads ${n}`),
    ...reach.builtins.filter((name) => name === "node:sqlite").map((n) => `loads ${n}`),
    ...reach.files.filter((f) => f.startsWith("src/worker/") || f.startsWith("src/server/"))
      .map((f) => `loads ${f}`),
  ];
}

async function denoInfo(entry: string): Promise<DenoInfo> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--config", `${ROOT}deno.json`, entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout)) as DenoInfo;
}

/** The entry a client command starts from: the program, then the command's module. */
async function commandEntry(dir: string, command: string): Promise<string> {
  const entry = `${dir}/${command}_entry.ts`;
  await Deno.writeTextFile(
    entry,
    `import ${JSON.stringify(`${ROOT}src/cli/program.ts`)};\n` +
      `import ${JSON.stringify(`${ROOT}src/cli/${command}.ts`)};\n`,
  );
  return entry;
}

Deno.test("client commands load neither the AWS SDK, node:sqlite, the worker nor the server", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-graph-" });
  try {
    const problems = await Promise.all(CLIENT_COMMANDS.map(async (command) => {
      const reach = staticReach(await denoInfo(await commandEntry(dir, command)));
      return clientCommandProblems(reach).map((p) => `airunner ${command}: ${p}`);
    }));
    assert.deepEqual(problems.flat(), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The client commands defined as specs, which start with neither commander nor protobuf. */
const SPEC_COMMANDS = ["submit", "get", "list", "cancel"];

/** What a spec command must not load: commander, the protobuf and Connect runtimes. */
export function leanCommandProblems(reach: Reach): string[] {
  const heavy = [
    "commander",
    "@commander-js/extra-typings",
    "@bufbuild/protobuf",
    "@connectrpc/connect",
  ];
  return [
    ...reach.npm.filter((name) => heavy.includes(name)).map((n) => `loads ${n}`),
    ...reach.files.filter((f) => f === "gen/job/v1/job_pb.ts").map((f) => `loads ${f}`),
  ];
}

Deno.test("submit, get, list and cancel start without commander or the protobuf runtime", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-graph-" });
  try {
    const problems = await Promise.all(SPEC_COMMANDS.map(async (command) => {
      const reach = staticReach(await denoInfo(await commandEntry(dir, command)));
      return leanCommandProblems(reach).map((p) => `airunner ${command}: ${p}`);
    }));
    assert.deepEqual(problems.flat(), []);
    // The check sees what it must: the worker's client loads both runtimes.
    const planted = `${dir}/planted.ts`;
    await Deno.writeTextFile(
      planted,
      `import ${JSON.stringify(`${ROOT}src/cli/get.ts`)};\n` +
        `import ${JSON.stringify(`${ROOT}src/protocol/transport.ts`)};\n` +
        `import ${JSON.stringify(`${ROOT}src/cli/commander_options.ts`)};\n`,
    );
    const found = leanCommandProblems(staticReach(await denoInfo(planted)));
    for (const p of ["loads commander", "loads @bufbuild/protobuf", "loads @connectrpc/connect"]) {
      assert.ok(found.includes(p), found.join("\n"));
    }
    assert.ok(found.includes("loads gen/job/v1/job_pb.ts"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("submit loads the YAML parser only when it reads a job file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-graph-" });
  try {
    const reach = staticReach(await denoInfo(await commandEntry(dir, "submit")));
    assert.ok(!reach.npm.includes("yaml"), reach.files.join(", "));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--version and --help load no npm package and a handful of files", async () => {
  const reach = staticReach(await denoInfo(`${ROOT}main.ts`));
  assert.deepEqual(reach.npm, [], "npm packages main.ts loads before it runs");
  assert.deepEqual(reach.builtins, []);
  assert.ok(reach.files.length <= 8, `main.ts loads ${reach.files.join(", ")}`);
});

Deno.test("the graph check fails on a planted import of the worker, the server, SQLite or AWS", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-graph-" });
  try {
    const planted = `${dir}/planted.ts`;
    await Deno.writeTextFile(
      planted,
      [
        `import ${JSON.stringify(`${ROOT}src/cli/get.ts`)};`,
        `import ${JSON.stringify(`${ROOT}src/worker/worker.ts`)};`,
        `import ${JSON.stringify(`${ROOT}src/server/http_server.ts`)};`,
        `import "node:sqlite";`,
        `import "@aws-sdk/client-sqs";`,
        // Type-only and dynamic imports load nothing at start-up.
        `import type { DatabaseSync } from "node:sqlite";`,
        `export type Db = DatabaseSync;`,
        `export const later = () => import("@aws-sdk/client-dynamodb");`,
      ].join("\n") + "\n",
    );
    const problems = clientCommandProblems(staticReach(await denoInfo(planted)));
    assert.ok(problems.includes("loads @aws-sdk/client-sqs"), problems.join("\n"));
    assert.ok(!problems.includes("loads @aws-sdk/client-dynamodb"), "dynamic: not at start-up");
    assert.ok(problems.includes("loads node:sqlite"));
    assert.ok(problems.includes("loads src/worker/worker.ts"));
    assert.ok(problems.includes("loads src/server/http_server.ts"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("submit loads the batch submitter only for --batch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-graph-" });
  try {
    const reach = staticReach(await denoInfo(await commandEntry(dir, "submit")));
    assert.ok(
      !reach.files.includes("src/cli/batch_submit.ts"),
      reach.files.join(", "),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("submit loads the OpenTelemetry API only when telemetry is on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-graph-" });
  try {
    const reach = staticReach(await denoInfo(await commandEntry(dir, "submit")));
    assert.ok(!reach.npm.includes("@opentelemetry/api"), reach.npm.join(", "));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
