/**
 * How to run the airunner command, for tests and benchmarks that start real
 * airunner processes: from source (main.ts under Deno, with the permissions
 * `deno task airunner` grants) by default; from a single bundled file when
 * AIRUNNER_ENTRYPOINT names one (run with no config, away from the source
 * tree); or as a compiled binary when AIRUNNER_BINARY names one. The last
 * two let the end-to-end suite check what people actually run.
 *
 * @module
 */

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/**
 * The `deno run` flags of `deno task airunner`: the permissions airunner
 * needs; a young generation of 4 MB, which keeps a busy server's memory
 * about 50 MB lower at the same throughput (measured: 146 vs 196 MB RSS
 * after 50,000 jobs); and node_modules as `deno install` left it. Under
 * deno.json's "auto" Deno locks node_modules/.deno/.deno.lock and re-checks
 * the install for every step of a module graph loaded at run time (35
 * times as `airunner server` loads its command), which cost `server` about
 * 90 ms of start-up and every client command 25-50 ms. deno.json's tasks
 * must say the same (a test checks).
 */
export const AIRUNNER_RUN_FLAGS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys=hostname,osRelease",
  "--v8-flags=--max-semi-space-size=4",
  "--node-modules-dir=manual",
];

/** The `deno` arguments that run `airunner ...args` (from source or AIRUNNER_ENTRYPOINT). */
export function airunnerArgv(args: readonly string[]): string[] {
  const entrypoint = Deno.env.get("AIRUNNER_ENTRYPOINT") ?? "";
  if (entrypoint !== "") return ["run", "--no-config", ...AIRUNNER_RUN_FLAGS, entrypoint, ...args];
  return ["run", "--config", CONFIG, ...AIRUNNER_RUN_FLAGS, MAIN, ...args];
}

/** The program and arguments that run `airunner ...args` (a binary, if AIRUNNER_BINARY is set). */
export function airunnerInvocation(args: readonly string[]): { command: string; args: string[] } {
  const binary = Deno.env.get("AIRUNNER_BINARY") ?? "";
  if (binary !== "") return { command: binary, args: [...args] };
  return { command: Deno.execPath(), args: airunnerArgv(args) };
}

/** A free TCP port on 127.0.0.1, chosen by the OS. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Waits until `GET url/health` answers 200. */
export async function waitForHealth(url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/health`);
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} did not become healthy within ${timeoutMs} ms`);
}

/** `airunner ...args` as one argv, program first (for shell command lines). */
export function airunnerCommandLine(args: readonly string[]): string[] {
  const { command, args: rest } = airunnerInvocation(args);
  return [command, ...rest];
}
