/**
 * Client transports: the Connect protocol (binary) over Deno's own fetch,
 * which speaks HTTP/1.1 and HTTP/2 (over TLS), streams request bodies for
 * client-streaming calls, and needs no Node.js HTTP layer.
 *
 * @module
 */
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createFetchClient } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { JobEventsService, JobService } from "../../gen/job/v1/job_pb.ts";

/** The default server URL of every client command. */
export const DEFAULT_SERVER_URL = "http://127.0.0.1:8080";

/** Where and how to reach a server. */
export interface ConnectionOptions {
  /** Base URL such as `http://127.0.0.1:8080`. */
  readonly serverUrl: string;
  /** Default deadline of each call, in milliseconds (none when absent). */
  readonly timeoutMs?: number;
}

/** Both services' clients over one transport. */
export interface AirunnerClients {
  readonly jobs: Client<typeof JobService>;
  readonly events: Client<typeof JobEventsService>;
}

/** Why a server URL was refused. */
export class InvalidServerUrlError extends Error {
  constructor(url: string, reason: string) {
    super(`server URL "${url}" ${reason}`);
    this.name = "InvalidServerUrlError";
  }
}

/** Checks a server URL and returns it without a trailing slash. */
export function parseServerUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InvalidServerUrlError(raw, "is not a URL (expected e.g. http://127.0.0.1:8080)");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidServerUrlError(raw, "must start with http:// or https://");
  }
  if (url.search !== "" || url.hash !== "") {
    throw new InvalidServerUrlError(raw, "must not have a query or fragment");
  }
  return url.href.replace(/\/+$/, "");
}

/** Creates the Connect transport for `options`. */
export function createAirunnerTransport(options: ConnectionOptions): Transport {
  return createTransport({
    baseUrl: parseServerUrl(options.serverUrl),
    httpClient: createFetchClient(fetch),
    useBinaryFormat: true,
    interceptors: [],
    acceptCompression: [],
    sendCompression: null,
    compressMinBytes: 1024,
    readMaxBytes: 64 * 1024 * 1024,
    writeMaxBytes: 64 * 1024 * 1024,
    ...(options.timeoutMs === undefined ? {} : { defaultTimeoutMs: options.timeoutMs }),
  });
}

/** Creates clients of both services. */
export function createAirunnerClients(options: ConnectionOptions): AirunnerClients {
  const transport = createAirunnerTransport(options);
  return {
    jobs: createClient(JobService, transport),
    events: createClient(JobEventsService, transport),
  };
}
