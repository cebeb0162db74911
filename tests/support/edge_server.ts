/**
 * A server in a process of its own, for tests that measure it from outside
 * (its RSS in /proc) or attack it with raw connections, with the options
 * `airunner server` has no flags for (short body timeouts).
 *
 * Run as a script, it starts `startServer` on 127.0.0.1 with a memory
 * store, logs JSON lines at debug level to stderr, prints one line of JSON
 * to stdout (`{"url": ..., "pid": ..., "token": ...}`; a token when auth is
 * on) and serves until SIGINT or SIGTERM. {@link startEdgeServer} runs it.
 *
 * @module
 */
import { ApiTokenVerifier, mintApiToken } from "../../src/auth/jwt.ts";
import { generateP256KeyPair } from "../../src/auth/keys.ts";
import { createLogger } from "../../src/logger.ts";
import { startServer } from "../../src/server/http_server.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { AIRUNNER_RUN_FLAGS } from "../../scripts/airunner_argv.ts";

/** How the server process is started. */
export interface EdgeServerOptions {
  readonly bodyIdleTimeoutMs: number;
  /** Check tokens (the process mints one admin token and reports it). */
  readonly auth: boolean;
}

/** A running server process. */
export interface EdgeServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** An admin token, when auth is on. */
  readonly token: string | undefined;
  /** The server's resident memory now, in MiB (VmRSS). */
  rssMiB(): number;
  /** Stops it (SIGTERM) and returns its stderr (JSON log lines). */
  stop(): Promise<string>;
}

/** Starts the server script in a new process and waits until it listens. */
export async function startEdgeServer(options: EdgeServerOptions): Promise<EdgeServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      ...AIRUNNER_RUN_FLAGS,
      import.meta.filename!,
      String(options.bodyIdleTimeoutMs),
      options.auth ? "auth" : "no-auth",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    line += value;
  }
  reader.releaseLock();
  const stdoutRest = child.stdout.cancel().catch(() => {});
  if (!line.includes("\n")) {
    await child.status;
    throw new Error(`the edge server did not start: ${await stderr}`);
  }
  const started = JSON.parse(line) as { url: string; pid: number; token?: string };
  let stopped: Promise<string> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
      await stdoutRest;
      return await stderr;
    })();
    return stopped;
  };
  return {
    url: started.url,
    port: Number(new URL(started.url).port),
    pid: started.pid,
    token: started.token,
    rssMiB: () => {
      const status = Deno.readTextFileSync(`/proc/${started.pid}/status`);
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
    },
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop();
    },
  };
}

if (import.meta.main) {
  const [idle, auth] = Deno.args;
  const keys = auth === "auth" ? await generateP256KeyPair() : undefined;
  const server = await startServer({
    store: new MemoryJobStore(),
    logger: createLogger({ level: "debug" }),
    hostname: "127.0.0.1",
    port: 0,
    bodyIdleTimeoutMs: Number(idle),
    ...(keys === undefined ? {} : { auth: new ApiTokenVerifier([keys.publicKey]) }),
  });
  const token = keys === undefined
    ? undefined
    : await mintApiToken(keys.privateKey, { subject: "test", scopes: ["admin"], ttlSeconds: 3600 });
  console.log(JSON.stringify({ url: server.url, pid: Deno.pid, token }));
  const stop = () => void server.close().then(() => Deno.exit(0));
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}
