/**
 * A real server on 127.0.0.1 (a free port) over a memory store, in this
 * process, for tests that speak to it over HTTP and look into its store;
 * and the worker's APIs pointed at a server.
 *
 * @module
 */
import { systemClock } from "../../src/clock.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import type { Logger } from "../../src/logger.ts";
import { type RunningServer, startServer } from "../../src/server/http_server.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import {
  type ClosableWorkerApi,
  createSessionWorkerApi,
} from "../../src/worker/session_worker_api.ts";
import { createRpcWorkerApi, type WorkerApi } from "../../src/worker/worker_api.ts";
import { memoryLog } from "./memory_log.ts";
import type { RetryPolicy } from "../../gen/job/v1/job_pb.ts";

/**
 * Runs `fn` with the server's URL, its store and the server itself; stops
 * both afterwards. `options.store` replaces the fresh memory store.
 */
export async function withMemoryServer<S extends MemoryJobStore = MemoryJobStore>(
  fn: (url: string, store: S, server: RunningServer) => Promise<void>,
  options: {
    store?: S;
    shutdownTimeoutMs?: number;
    sessionHeartbeatMs?: number;
    defaultRetry?: RetryPolicy;
  } = {},
): Promise<void> {
  const store = options.store ?? new MemoryJobStore() as S;
  const server = await startServer({
    store,
    logger: memoryLog().logger,
    hostname: "127.0.0.1",
    port: 0,
    ...(options.shutdownTimeoutMs === undefined
      ? {}
      : { shutdownTimeoutMs: options.shutdownTimeoutMs }),
    ...(options.sessionHeartbeatMs === undefined
      ? {}
      : { sessionHeartbeatMs: options.sessionHeartbeatMs }),
    ...(options.defaultRetry === undefined ? {} : { defaultRetry: options.defaultRetry }),
  });
  try {
    await fn(server.url, store, server);
  } finally {
    await server.close();
    await store.close();
  }
}

/** The worker's unary API against `serverUrl`, as `airunner worker` builds it. */
export function unaryApiTo(serverUrl: string, workerName = ""): WorkerApi {
  return createRpcWorkerApi(
    createAirunnerClients({ serverUrl, bufferRequestStreams: true }),
    workerName,
  );
}

/** The worker's session API against `serverUrl` (mode `session` unless told). */
export function sessionApiTo(
  serverUrl: string,
  options: {
    mode?: "auto" | "session";
    logger?: Logger;
    heartbeatMs?: number;
    workerName?: string;
  } = {},
): ClosableWorkerApi {
  return createSessionWorkerApi({
    connection: { serverUrl },
    unary: unaryApiTo(serverUrl),
    mode: options.mode ?? "session",
    clock: systemClock,
    logger: options.logger ?? memoryLog().logger,
    ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
    ...(options.workerName === undefined ? {} : { workerName: options.workerName }),
  });
}
