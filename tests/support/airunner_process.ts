/**
 * Running the real `airunner` command (main.ts under Deno) as a child
 * process, the way people and scripts do.
 *
 * @module
 */

import { join } from "node:path";
import {
  airunnerCommandLine,
  airunnerInvocation,
  freePort,
  waitForHealth,
} from "../../scripts/airunner_argv.ts";
import { shellQuote } from "../../src/worker/pty.ts";

export {
  airunnerCommandLine,
  airunnerInvocation,
  freePort,
  waitForHealth,
} from "../../scripts/airunner_argv.ts";

/** What a finished airunner process did. */
export interface AirunnerResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs airunner to its end. */
export async function runAirunner(
  args: readonly string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<AirunnerResult> {
  const { command, args: argv } = airunnerInvocation(args);
  const child = new Deno.Command(command, {
    args: argv,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // SIGKILL, not the SIGTERM an abort signal sends: a process whose event
  // loop is stuck never runs its signal listeners, and its test would hang
  // the whole run instead of failing (seen once: a submit blocked in
  // Deno's native code at exit with OTEL_DENO on).
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }, options.timeoutMs ?? 60_000);
  const output = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/**
 * The two ways a worker can talk to the server; end-to-end tests that run a
 * worker run once over each. ("session", not "auto": a fallback to unary
 * must not hide a broken session.)
 */
export const WORKER_PROTOCOLS = ["session", "unary"] as const;
export type WorkerProtocol = typeof WORKER_PROTOCOLS[number];

/** A long-running airunner process (server, worker, dev). */
export interface AirunnerProcess extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  /** Sends `signal` and waits for the exit; returns the exit code and stderr. */
  stop(signal?: Deno.Signal): Promise<{ code: number; stderr: string }>;
}

/** How long {@link AirunnerProcess.stop} waits before SIGKILL. */
const STOP_GRACE_MS = 20_000;

/** Starts airunner in the background; its stderr is collected. */
export function startAirunner(
  args: readonly string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): AirunnerProcess {
  const { command, args: argv } = airunnerInvocation(args);
  const child = new Deno.Command(command, {
    args: argv,
    env: { NO_COLOR: "1", ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderrText = new Response(child.stderr).text();
  let stopped: Promise<{ code: number; stderr: string }> | undefined;
  const stop = (signal: Deno.Signal = "SIGINT") => {
    stopped ??= (async () => {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
      // A process that ignores the signal is killed, so a hang fails its test, not the run.
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Exited meanwhile.
        }
      }, STOP_GRACE_MS);
      const status = await child.status;
      clearTimeout(timer);
      return { code: status.code, stderr: await stderrText };
    })();
    return stopped;
  };
  return {
    child,
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop("SIGKILL");
    },
  };
}

/** `airunner server` on 127.0.0.1:`port` with its sqlite store in `dataDir`, without auth; not yet healthy. */
export function startServerProcess(dataDir: string, port: number): AirunnerProcess {
  return startAirunner([
    "server",
    "--listen",
    `127.0.0.1:${port}`,
    "--data-dir",
    dataDir,
    "--no-auth",
  ]);
}

/** A running `airunner dev` with the scratch directory of its test. */
export interface DevProcess extends AirunnerProcess {
  /** Its URL, `http://127.0.0.1:<port>`. */
  readonly server: string;
  /** A temporary directory for the test's own files; the data dir is `<scratch>/data`. */
  readonly scratch: string;
  /**
   * Runs a bash script in `scratch` as a user would: `airunner` on the PATH
   * (this checkout's, through a shim in `<scratch>/bin`), AIRUNNER_SERVER
   * set to this server.
   */
  runScript(script: string): Promise<AirunnerResult>;
}

/**
 * Starts `airunner dev` on a free port and waits until it is healthy.
 * Disposing it kills it and removes its scratch directory.
 */
export async function startDev(
  options: {
    prefix: string;
    workers?: number;
    protocol?: WorkerProtocol;
    /** More flags for `airunner dev`. */
    args?: readonly string[];
  },
): Promise<DevProcess> {
  const port = freePort();
  const server = `http://127.0.0.1:${port}`;
  const scratch = await Deno.makeTempDir({ prefix: options.prefix });
  const dev = startAirunner([
    "dev",
    "--listen",
    `127.0.0.1:${port}`,
    "--data-dir",
    join(scratch, "data"),
    ...(options.workers === undefined ? [] : ["--workers", String(options.workers)]),
    ...(options.protocol === undefined ? [] : ["--protocol", options.protocol]),
    ...(options.args ?? []),
  ]);
  try {
    await waitForHealth(server);
  } catch (error) {
    await dev.stop("SIGKILL");
    await Deno.remove(scratch, { recursive: true });
    throw error;
  }
  const bin = join(scratch, "bin");
  let shim: Promise<void> | undefined;
  const runScript = async (script: string): Promise<AirunnerResult> => {
    shim ??= Deno.mkdir(bin).then(() =>
      Deno.writeTextFile(
        join(bin, "airunner"),
        `#!/bin/sh\nexec ${airunnerCommandLine([]).map(shellQuote).join(" ")} "$@"\n`,
        { mode: 0o755 },
      )
    );
    await shim;
    const out = await new Deno.Command("bash", {
      args: ["-c", script],
      cwd: scratch,
      env: {
        PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
        AIRUNNER_SERVER: server,
        NO_COLOR: "1",
      },
      stdin: "null",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  };
  return {
    ...dev,
    server,
    scratch,
    runScript,
    async [Symbol.asyncDispose]() {
      await dev.stop("SIGKILL");
      await Deno.remove(scratch, { recursive: true });
    },
  };
}
