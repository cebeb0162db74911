/**
 * `deno task compile`: builds one self-contained `airunner` executable per
 * OS into dist/ with `deno compile`, plus SHA256SUMS.
 *
 *   deno task compile                                   # every target
 *   deno task compile --target x86_64-unknown-linux-gnu # one
 *   DENORT_BIN=/path/to/denort deno task compile --target x86_64-unknown-linux-gnu
 *
 * - The binaries get exactly the permissions `deno task airunner` grants.
 * - Only npm packages main.ts reaches are embedded (`--exclude-unused-npm`):
 *   build and test tools (buf, protoc-gen-es, the AWS stand-ins) stay out.
 * - The version and the git commit are stamped in (`airunner --version`)
 *   through a generated entrypoint in dist/, so no source file changes.
 * - `deno compile` needs Deno's base runtime, denort, for each target. It
 *   downloads it; where it cannot, DENORT_BIN names a local copy (one
 *   target per run), and this task says so when the download fails.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { VERSION } from "../src/version.ts";
import { AIRUNNER_RUN_FLAGS } from "./airunner_argv.ts";
import { COMMANDS } from "../src/cli/command_index.ts";

/** The targets a release ships. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** Largest acceptable Linux x86_64 binary. */
const LINUX_X64_LIMIT_BYTES = 110 * 1024 * 1024;

const ROOT = fromFileUrl(new URL("..", import.meta.url));

/** The file name of a target's binary. */
export function binaryName(target: string): string {
  return `airunner-${VERSION}-${target}${target.includes("windows") ? ".exe" : ""}`;
}

/**
 * What to tell someone whose build failed for want of denort (pure: it
 * reads the compiler's output). Undefined when that was not the problem.
 */
export function explainMissingRuntime(compilerOutput: string, target: string): string | undefined {
  const denortMissing = /Could not find denort at '([^']*)'/.exec(compilerOutput);
  if (denortMissing !== null) {
    return `DENORT_BIN names ${
      denortMissing[1]
    }, which does not exist; point it at the denort binary of Deno ${Deno.version.deno} for ${target}`;
  }
  const downloadFailed = /Setting up base binary/.test(compilerOutput) &&
    /error sending request|dns error|Download|timed out|connection/i.test(compilerOutput);
  if (!downloadFailed) return undefined;
  return [
    `deno compile could not download Deno's base runtime (denort ${Deno.version.deno}) for ${target}.`,
    `Where the download is not possible, get denort-${target}.zip for Deno ${Deno.version.deno} on a machine that can, unzip it here, and run:`,
    `  DENORT_BIN=/path/to/denort deno task compile --target ${target}`,
    "(DENORT_BIN serves one target per run.)",
  ].join("\n");
}

async function gitCommit(): Promise<string> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short=12", "HEAD"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : "";
  } catch {
    return "";
  }
}

/** This process's environment, with an empty DENORT_BIN treated as unset (deno would not). */
function compilerEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  if (env.DENORT_BIN === "") delete env.DENORT_BIN;
  return env;
}

async function sha256Hex(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      target: { type: "string", multiple: true },
      "out-dir": { type: "string", default: join(ROOT, "dist") },
    },
  });
  const targets = values.target ?? [...TARGETS];
  for (const target of targets) {
    if (!(TARGETS as readonly string[]).includes(target)) {
      console.error(`compile: error: --target ${target}: not one of ${TARGETS.join(", ")}`);
      return 2;
    }
  }
  const outDir = values["out-dir"];
  await Deno.mkdir(outDir, { recursive: true });
  const commit = await gitCommit();
  // An entrypoint that stamps the build, then runs the CLI as main.ts does.
  const entry = join(outDir, ".entry.ts");
  const src = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);
  await Deno.writeTextFile(
    entry,
    `import { stampBuild } from ${src("../src/version.ts")};\n` +
      `import { runCli } from ${src("../src/cli/program.ts")};\n` +
      `stampBuild(${JSON.stringify(commit)});\n` +
      `Deno.exit(await runCli(Deno.args));\n`,
  );
  console.error(`compile: airunner ${VERSION}${commit === "" ? "" : ` (commit ${commit})`}`);

  const built: string[] = [];
  let failed = false;
  try {
    for (const target of targets) {
      const output = join(outDir, binaryName(target));
      const result = await new Deno.Command(Deno.execPath(), {
        args: [
          "compile",
          "--config",
          join(ROOT, "deno.json"),
          "--target",
          target,
          "--output",
          output,
          // npm packages from the global cache, and only those main.ts reaches
          // (a local node_modules would be embedded whole, build tools and all).
          "--node-modules-dir=none",
          "--exclude-unused-npm",
          // The binary carries its packages: node_modules is a deno run matter.
          ...AIRUNNER_RUN_FLAGS.filter((flag) => !flag.startsWith("--node-modules-dir")),
          // Each command's module is a dynamic import (see command_index.ts):
          // named here so the binary holds every one, whatever deno.json's
          // lazy-dynamic-imports means to the compiler.
          ...COMMANDS.flatMap((c) => ["--include", join(ROOT, "src", "cli", `${c.name}.ts`)]),
          // And the modules a command imports only when a flag asks for them.
          ...["job_file.ts", "batch_submit.ts"].flatMap((
            f,
          ) => ["--include", join(ROOT, "src", "cli", f)]),
          entry,
        ],
        cwd: ROOT,
        env: compilerEnv(),
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(result.stderr) +
        new TextDecoder().decode(result.stdout);
      if (!result.success) {
        console.error(text.trim());
        const hint = explainMissingRuntime(text, target);
        console.error(`compile: error: ${target} failed${hint === undefined ? "" : `:\n${hint}`}`);
        failed = true;
        continue;
      }
      const { size } = await Deno.stat(output);
      const limit = target === "x86_64-unknown-linux-gnu"
        ? ` (limit ${megabytes(LINUX_X64_LIMIT_BYTES)}${
          size > LINUX_X64_LIMIT_BYTES ? ": OVER" : ""
        })`
        : "";
      console.log(`${basename(output)}  ${megabytes(size)}${limit}`);
      if (target === "x86_64-unknown-linux-gnu" && size > LINUX_X64_LIMIT_BYTES) failed = true;
      built.push(output);
    }
  } finally {
    await Deno.remove(entry).catch(() => {});
  }
  if (built.length > 0) {
    // Keep the sums of binaries built by earlier runs (one DENORT_BIN target at a time).
    const sumsPath = join(outDir, "SHA256SUMS");
    const sums = new Map<string, string>();
    const earlier = await Deno.readTextFile(sumsPath).catch(() => "");
    for (const line of earlier.split("\n")) {
      const [hash, name] = line.split("  ");
      if (hash && name) sums.set(name, hash);
    }
    for (const path of built) sums.set(basename(path), await sha256Hex(path));
    const lines = [...sums].sort(([a], [b]) => a.localeCompare(b)).map(([n, h]) => `${h}  ${n}`);
    await Deno.writeTextFile(sumsPath, lines.join("\n") + "\n");
    console.log(`SHA256SUMS  ${sums.size} binaries`);
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
