/**
 * The processes a benchmark starts (an airunner server, workers, load
 * agents) and what /proc says about them: resident memory and CPU time.
 *
 * @module
 */
import { airunnerArgv, freePort, waitForHealth } from "../airunner_argv.ts";

/** A child process the benchmark started and stops. */
export interface BenchProcess {
  readonly pid: number;
  /** Resident set size in bytes (Linux /proc; NaN elsewhere). */
  rssBytes(): Promise<number>;
  /** User + system CPU time used so far, in milliseconds (Linux /proc; NaN elsewhere). */
  cpuMs(): Promise<number>;
  /** Stops the process (SIGINT, then SIGKILL after 10 s) and waits for it. */
  stop(): Promise<void>;
}

/** A running airunner server. */
export interface BenchServer extends BenchProcess {
  readonly url: string;
}

function wrap(child: Deno.ChildProcess): BenchProcess {
  let stopped: Promise<void> | undefined;
  return {
    pid: child.pid,
    rssBytes: () => readRss(child.pid),
    cpuMs: () => readCpuMs(child.pid),
    stop() {
      stopped ??= (async () => {
        try {
          child.kill("SIGINT");
        } catch {
          return;
        }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Gone meanwhile.
          }
        }, 10_000);
        await child.status;
        clearTimeout(timer);
      })();
      return stopped;
    },
  };
}

/** Starts `airunner server` on a free loopback port (a fresh data dir for sqlite). */
export async function startServerProcess(store: string): Promise<BenchServer> {
  const port = freePort();
  const dataDir = await Deno.makeTempDir({ prefix: "airunner-bench-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: airunnerArgv([
      "server",
      "--listen",
      `127.0.0.1:${port}`,
      "--store",
      store,
      "--data-dir",
      dataDir,
      "--no-auth",
      "--log-level",
      "warn",
    ]),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(url);
  const process = wrap(child);
  return {
    ...process,
    url,
    async stop() {
      await process.stop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** Starts `airunner worker` against `server`. */
export function startWorkerProcess(
  server: string,
  concurrency: number,
  queue: string,
): BenchProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: airunnerArgv([
      "worker",
      "--server",
      server,
      "--queue",
      queue,
      "--concurrency",
      String(concurrency),
      "--log-level",
      "warn",
    ]),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return wrap(child);
}

/** Runs a load agent (scripts/bench/agent.ts) to its end; returns its JSON result. */
export async function runAgent<T>(args: string[], onStart?: (p: BenchProcess) => void): Promise<T> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      "--allow-net",
      "--allow-read",
      "--allow-env",
      "--allow-sys=hostname",
      new URL("./agent.ts", import.meta.url).pathname,
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  onStart?.(wrap(child));
  const [status, out] = await Promise.all([child.status, new Response(child.stdout).text()]);
  if (!status.success) {
    throw new Error(`bench agent ${args[0]} failed with exit code ${status.code}`);
  }
  return JSON.parse(out) as T;
}

async function readRss(pid: number): Promise<number> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb === undefined ? Number.NaN : Number(kb) * 1024;
  } catch {
    return Number.NaN;
  }
}

async function readCpuMs(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after the command name (which may hold spaces) start at ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
    return ticks * 10; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}
