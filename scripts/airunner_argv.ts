/**
 * How to run the airunner command from source (main.ts under Deno, with the
 * permissions `deno task airunner` grants), for tests and benchmarks that
 * start real airunner processes.
 *
 * @module
 */

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** The permissions `deno task airunner` grants. */
export const AIRUNNER_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys=hostname",
];

/** The `deno` arguments that run `airunner ...args`. */
export function airunnerArgv(args: readonly string[]): string[] {
  return ["run", "--config", CONFIG, ...AIRUNNER_PERMISSIONS, MAIN, ...args];
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
