/**
 * Scenario cli-startup: what one `airunner` invocation costs as a whole
 * process, for people who script it in shell loops. Each command runs
 * `runs` times (20; 3 with --quick), the commands interleaved round by
 * round so drift on the machine hits them alike, next to an empty Deno
 * script run with the same flags and config: the yardstick every target is
 * relative to.
 *
 * - `--version`, `--help`: spawn to exit;
 * - `submit -- true`, `get`, `list`, `cancel`: against a memory server on
 *   127.0.0.1 started by the scenario (no worker on their queues, so jobs
 *   stay queued and `cancel` always has one to cancel);
 * - `submit --follow -- true`: end to end, with a worker on its queue;
 * - server ready: spawn to `GET /health` answering; worker ready: spawn to
 *   its "worker session open" line (it holds a session).
 *
 * Targets (issue 20): --version and --help <= empty + 25 ms p50; submit,
 * get, list, cancel <= empty + 45 ms; submit --follow <= empty + 60 ms;
 * server and worker ready <= empty + 250 ms.
 *
 * The compiled binary is measured the same way when there is one: named by
 * AIRUNNER_BINARY, or built with `deno task compile` when DENORT_BIN names
 * Deno's base runtime (which `deno compile` otherwise downloads).
 *
 * @module
 */
import { join } from "node:path";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { AIRUNNER_RUN_FLAGS, airunnerInvocation, freePort } from "../airunner_argv.ts";
import { binaryName } from "../compile.ts";
import { childEnv, startServerProcess, startWorkerProcess } from "./processes.ts";
import { type Figure, type ScenarioContext, type ScenarioResult, target } from "./scenario.ts";
import { percentile } from "./stats.ts";

/** The scenario's name in `deno task bench`. */
export const CLI_STARTUP_SCENARIO = "cli-startup";

/** Stores it runs on: the CLI's start-up does not depend on the server's store. */
export const CLI_STARTUP_STORES: readonly string[] = ["memory"];

/** Why it does not run on the other stores. */
export const CLI_STARTUP_SKIP_REASON =
  "run on the memory store only: it measures the CLI's own start-up, which does not depend " +
  "on the server's store";

const YARDSTICK = new URL("./startup_yardstick.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** How to start airunner: the program and the arguments before airunner's own. */
type Invoke = (args: readonly string[]) => { command: string; args: string[] };

/** The client commands, by figure name: argv given the server and a job to act on. */
interface ClientCommand {
  readonly name: string;
  readonly argv: (server: string, jobId: () => Promise<string>) => Promise<string[]>;
  /** The target: allowance over the empty script's p50, in ms. */
  readonly allowanceMs: number;
}

const CLIENT_COMMANDS: readonly ClientCommand[] = [
  { name: "--version", argv: () => Promise.resolve(["--version"]), allowanceMs: 25 },
  { name: "--help", argv: () => Promise.resolve(["--help"]), allowanceMs: 25 },
  {
    name: "submit -- true",
    argv: (server) =>
      Promise.resolve(["submit", "--server", server, "--queue", "cli-submit", "--", "true"]),
    allowanceMs: 45,
  },
  {
    name: "get",
    argv: async (server, jobId) => ["get", await jobId(), "--server", server],
    allowanceMs: 45,
  },
  {
    name: "list",
    argv: (server) => Promise.resolve(["list", "--server", server, "--queue", "cli-submit"]),
    allowanceMs: 45,
  },
  {
    name: "cancel",
    argv: async (server, jobId) => ["cancel", await jobId(), "--server", server],
    allowanceMs: 45,
  },
  {
    name: "submit --follow -- true",
    argv: (server) =>
      Promise.resolve([
        "submit",
        "--server",
        server,
        "--queue",
        "cli-follow",
        "--follow",
        "--",
        "true",
      ]),
    allowanceMs: 60,
  },
];

/** What server and worker start-up are allowed over the empty script. */
const READY_ALLOWANCE_MS = 250;

export async function cliStartup(context: ScenarioContext): Promise<ScenarioResult> {
  const runs = context.quick ? 3 : 20;
  const server = await startServerProcess(context.store);
  const worker = startWorkerProcess(server.url, 1, "cli-follow");
  const notes = [
    "whole processes, spawn to exit (server: to /health answering; worker: to its session being open); p50 of the runs, interleaved round by round",
    "yardstick: scripts/bench/startup_yardstick.ts (console.log(1)) under deno run with airunner's flags and deno.json",
  ];
  try {
    const viaDeno = await measureAll(airunnerInvocation, server.url, runs, context);
    const figures: Figure[] = [...viaDeno.figures];
    const emptyP50 = viaDeno.emptyP50;
    const targets = [
      ...CLIENT_COMMANDS.map((c) => {
        const figure = `${c.name} p50`;
        return target(
          figure,
          viaDeno.p50s.get(figure)!,
          "<=",
          emptyP50 + c.allowanceMs,
          `empty + ${c.allowanceMs} ms`,
        );
      }),
      ...["server ready p50", "worker ready p50"].map((figure) =>
        target(
          figure,
          viaDeno.p50s.get(figure)!,
          "<=",
          emptyP50 + READY_ALLOWANCE_MS,
          `empty + ${READY_ALLOWANCE_MS} ms`,
        )
      ),
    ];
    const binary = await compiledBinary(context);
    if (binary.path === undefined) {
      notes.push(`compiled binary not measured: ${binary.why}`);
    } else {
      const path = binary.path;
      const compiled = await measureAll(
        (args) => ({ command: path, args: [...args] }),
        server.url,
        runs,
        context,
      );
      for (const f of compiled.figures) {
        if (f.name !== "empty script p50") figures.push({ ...f, name: `compiled ${f.name}` });
      }
      notes.push(
        `compiled binary: ${binary.why}; no targets of its own (the yardstick is deno run)`,
      );
      await binary.cleanUp();
    }
    return {
      name: CLI_STARTUP_SCENARIO,
      store: context.store,
      inputs: { runs, commands: CLIENT_COMMANDS.length + 2, server: "memory, 127.0.0.1" },
      figures,
      targets,
      notes,
    };
  } finally {
    await worker.stop();
    await server.stop();
  }
}

interface Measured {
  readonly figures: Figure[];
  readonly p50s: Map<string, number>;
  readonly emptyP50: number;
}

/** Runs every command `runs` times through `invoke`, with the yardstick; p50 of each. */
async function measureAll(
  invoke: Invoke,
  serverUrl: string,
  runs: number,
  context: ScenarioContext,
): Promise<Measured> {
  const clients = createAirunnerClients({ serverUrl });
  // Jobs for get and cancel on a queue no worker takes, made beforehand so
  // that only the command itself is timed.
  const waiting: string[] = [];
  for (let i = 0; i < 2 * (runs + 1); i++) {
    const { jobId } = await clients.jobs.enqueueJob({
      queue: "cli-waiting",
      jobParams: { command: "true" },
    });
    waiting.push(jobId);
  }
  const nextJob = () => {
    const jobId = waiting.pop();
    if (jobId === undefined) throw new Error("cli-startup: out of prepared jobs");
    return Promise.resolve(jobId);
  };
  const empty: number[] = [];
  const samples = new Map<string, number[]>(CLIENT_COMMANDS.map((c) => [c.name, []]));
  const yardstick = {
    command: Deno.execPath(),
    args: ["run", "--config", CONFIG, ...AIRUNNER_RUN_FLAGS, YARDSTICK],
  };
  // One round unmeasured: the first run of a file fills Deno's caches.
  for (let round = -1; round < runs; round++) {
    const emptyMs = await timeProcess(yardstick.command, yardstick.args);
    if (round >= 0) empty.push(emptyMs);
    for (const command of CLIENT_COMMANDS) {
      const { command: program, args } = invoke(await command.argv(serverUrl, nextJob));
      const ms = await timeProcess(program, args);
      if (round >= 0) samples.get(command.name)!.push(ms);
    }
  }
  context.progress(`client commands done (${runs} runs each)`);
  const serverReady: number[] = [];
  const workerReady: number[] = [];
  for (let round = -1; round < runs; round++) {
    const s = await timeServerReady(invoke);
    const w = await timeWorkerReady(invoke, serverUrl);
    if (round >= 0) {
      serverReady.push(s);
      workerReady.push(w);
    }
  }
  context.progress("server and worker ready done");
  const p50s = new Map<string, number>();
  const emptyP50 = percentile(empty, 50);
  p50s.set("empty script p50", emptyP50);
  for (const [name, values] of samples) p50s.set(`${name} p50`, percentile(values, 50));
  p50s.set("server ready p50", percentile(serverReady, 50));
  p50s.set("worker ready p50", percentile(workerReady, 50));
  return {
    figures: [...p50s].map(([name, value]) => ({ name, value, unit: "ms" })),
    p50s,
    emptyP50,
  };
}

/** Spawn to exit of one process, in ms; a failing command fails the scenario. */
async function timeProcess(command: string, args: readonly string[]): Promise<number> {
  const started = performance.now();
  const out = await new Deno.Command(command, {
    args: [...args],
    env: childEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  if (!out.success) {
    throw new Error(
      `cli-startup: ${args.join(" ")} exited with ${out.code}: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return ms;
}

/** Starts an airunner process with the bench's environment, no stdin and no stdout. */
function spawnQuiet(command: string, args: string[], stderr: "null" | "piped"): Deno.ChildProcess {
  return new Deno.Command(command, {
    args,
    env: childEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr,
  }).spawn();
}

/** Spawn of `airunner server` to its first healthy answer, in ms. */
async function timeServerReady(invoke: Invoke): Promise<number> {
  const port = freePort();
  const { command, args } = invoke([
    "server",
    "--listen",
    `127.0.0.1:${port}`,
    "--store",
    "memory",
    "--no-auth",
    "--log-level",
    "warn",
  ]);
  const started = performance.now();
  const child = spawnQuiet(command, args, "null");
  try {
    const deadline = started + 20_000;
    while (performance.now() < deadline) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        await res.body?.cancel();
        if (res.ok) return performance.now() - started;
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    throw new Error("cli-startup: airunner server did not answer /health within 20 s");
  } finally {
    child.kill("SIGINT");
    await child.status;
  }
}

/** Spawn of `airunner worker` to its "worker session open" line, in ms. */
async function timeWorkerReady(invoke: Invoke, serverUrl: string): Promise<number> {
  const { command, args } = invoke([
    "worker",
    "--server",
    serverUrl,
    "--queue",
    "cli-ready",
    "--log-level",
    "info",
  ]);
  const started = performance.now();
  const child = spawnQuiet(command, args, "piped");
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  let readyMs = Number.NaN;
  let seen = "";
  try {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      seen += decoder.decode(chunk, { stream: true });
      if (Number.isNaN(readyMs) && seen.includes("worker session open")) {
        readyMs = performance.now() - started;
        child.kill("SIGINT");
      }
    }
  } finally {
    clearTimeout(timer);
    await child.status;
  }
  if (Number.isNaN(readyMs)) {
    throw new Error(`cli-startup: airunner worker never opened its session:\n${seen.slice(-2000)}`);
  }
  return readyMs;
}

/** The compiled binary to measure, or why there is none. */
async function compiledBinary(
  context: ScenarioContext,
): Promise<{ path?: string; why: string; cleanUp: () => Promise<void> }> {
  const none = async () => {};
  const named = Deno.env.get("AIRUNNER_BINARY") ?? "";
  if (named !== "") return { path: named, why: `AIRUNNER_BINARY=${named}`, cleanUp: none };
  const hostTarget = ({
    "linux-x86_64": "x86_64-unknown-linux-gnu",
    "linux-aarch64": "aarch64-unknown-linux-gnu",
    "darwin-x86_64": "x86_64-apple-darwin",
    "darwin-aarch64": "aarch64-apple-darwin",
  } as Record<string, string>)[`${Deno.build.os}-${Deno.build.arch}`];
  if (hostTarget === undefined) {
    return { why: `no compile target for ${Deno.build.os}-${Deno.build.arch}`, cleanUp: none };
  }
  if ((Deno.env.get("DENORT_BIN") ?? "") === "") {
    return {
      why: "deno compile needs Deno's base runtime (denort), which it downloads and this " +
        "machine cannot reach; set DENORT_BIN to a local denort, or AIRUNNER_BINARY to a built binary",
      cleanUp: none,
    };
  }
  const outDir = await Deno.makeTempDir({ prefix: "airunner-bench-compile-" });
  const cleanUp = () => Deno.remove(outDir, { recursive: true }).catch(() => {});
  context.progress(`compiling ${hostTarget} with DENORT_BIN...`);
  const built = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../compile.ts", import.meta.url).pathname,
      "--target",
      hostTarget,
      "--out-dir",
      outDir,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!built.success) {
    await cleanUp();
    const tail = new TextDecoder().decode(built.stderr).trim().split("\n").slice(-3).join(" ");
    return { why: `deno task compile failed: ${tail}`, cleanUp: none };
  }
  return { path: join(outDir, binaryName(hostTarget)), why: "built with DENORT_BIN", cleanUp };
}
