/**
 * Where a client finds its server: the URL rule and the connection settings
 * that both clients (the worker's Connect client in transport.ts, the CLI's
 * JSON client in src/client/json_client.ts) take. Imports nothing, so the
 * CLI can check `--server` without loading either.
 *
 * @module
 */
/** The default server URL of every client command. */
export const DEFAULT_SERVER_URL = "http://127.0.0.1:8080";

/** Where and how to reach a server. */
export interface ConnectionOptions {
  /** Base URL such as `http://127.0.0.1:8080`. */
  readonly serverUrl: string;
  /** Default deadline of each call, in milliseconds (none when absent). */
  readonly timeoutMs?: number;
  /**
   * Send client-streaming request bodies as one buffer, once the caller's
   * messages are all written. For callers that send a known, finite set of
   * messages per call (the worker's publishes): one write instead of a
   * chunked stream saves a round trip's worth of latency.
   */
  readonly bufferRequestStreams?: boolean;
  /** Bearer token sent with every call (an API token from `airunner token`). */
  readonly token?: string;
  /** PEM certificate(s) of a private CA to trust for https:// servers. */
  readonly caCertPem?: string;
  /**
   * Speak HTTP/2 only: prior knowledge on http://, ALPN h2 on https://. Full
   * duplex streams (the worker session) need it; a server that cannot speak
   * HTTP/2 then fails at once instead of hanging half duplex.
   */
  readonly http2Only?: boolean;
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
