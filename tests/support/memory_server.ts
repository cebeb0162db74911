/**
 * A real server on 127.0.0.1 (a free port) over a memory store, in this
 * process, for tests that speak to it over HTTP and look into its store.
 *
 * @module
 */
import { startServer } from "../../src/server/http_server.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { memoryLog } from "./memory_log.ts";

/** Runs `fn` with the server's URL and its store; stops both afterwards. */
export async function withMemoryServer(
  fn: (url: string, store: MemoryJobStore) => Promise<void>,
): Promise<void> {
  const store = new MemoryJobStore();
  const server = await startServer({
    store,
    logger: memoryLog().logger,
    hostname: "127.0.0.1",
    port: 0,
  });
  try {
    await fn(server.url, store);
  } finally {
    await server.close();
    await store.close();
  }
}
