/**
 * Client transports: the Connect protocol (binary) over Deno's own fetch,
 * which speaks HTTP/1.1 and HTTP/2 (over TLS), streams request bodies for
 * client-streaming calls, and needs no Node.js HTTP layer.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import type { UniversalClientFn } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { JobEventsService, JobService } from "../../gen/job/v1/job_pb.ts";
import { MAX_CLIENT_MESSAGE_BYTES } from "./limits.ts";
import { type ConnectionOptions, parseServerUrl } from "./server_url.ts";

export {
  type ConnectionOptions,
  DEFAULT_SERVER_URL,
  InvalidServerUrlError,
  parseServerUrl,
} from "./server_url.ts";

/** Both services' clients over one transport. */
export interface AirunnerClients {
  readonly jobs: Client<typeof JobService>;
  readonly events: Client<typeof JobEventsService>;
}

/** Creates the Connect transport for `options`. */
export function createAirunnerTransport(options: ConnectionOptions): Transport {
  if (options.caCertPem !== undefined || options.http2Only === true) {
    return createTransportOver(options, httpClientFor(options));
  }
  return createTransportOver(options, undefined);
}

/**
 * A transport over connections of its own: `close()` drops them. For a
 * caller that must be sure its next call opens a new connection, since
 * HTTP/2 would otherwise carry it over the one that went silent.
 */
export function createClosableTransport(
  options: ConnectionOptions,
): { transport: Transport; close(): void } {
  const client = httpClientFor(options);
  return { transport: createTransportOver(options, client), close: () => client.close() };
}

function httpClientFor(options: ConnectionOptions): Deno.HttpClient {
  return Deno.createHttpClient({
    ...(options.caCertPem === undefined ? {} : { caCerts: [options.caCertPem] }),
    ...(options.http2Only === true ? { http1: false, http2: true } : {}),
  });
}

function createTransportOver(
  options: ConnectionOptions,
  client: Deno.HttpClient | undefined,
): Transport {
  const fetchFn: typeof fetch = client === undefined
    ? fetch
    : (input, init) => fetch(input, { ...init, client });
  const interceptors: Interceptor[] = [];
  if (options.token !== undefined && options.token !== "") {
    const authorization = `Bearer ${options.token}`;
    interceptors.push((next) => (req) => {
      req.header.set("Authorization", authorization);
      return next(req);
    });
  }
  return createTransport({
    baseUrl: parseServerUrl(options.serverUrl),
    httpClient: createFetchHttpClient(fetchFn, options.bufferRequestStreams ?? false),
    useBinaryFormat: true,
    interceptors,
    acceptCompression: [],
    sendCompression: null,
    compressMinBytes: 1024,
    readMaxBytes: MAX_CLIENT_MESSAGE_BYTES,
    writeMaxBytes: MAX_CLIENT_MESSAGE_BYTES,
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

/**
 * Connect's HTTP client over fetch. Unary request and response bodies are
 * handled as one buffer each: as streams they cost Deno a stream resource
 * and chunked encoding per call, which made the client, not the server, the
 * bottleneck. Streaming calls keep streamed bodies.
 */
export function createFetchHttpClient(
  fetchFn: typeof fetch,
  bufferRequestStreams = false,
): UniversalClientFn {
  return async (req) => {
    let body: BodyInit | null = null;
    if (req.body !== undefined) {
      const streaming = !bufferRequestStreams &&
        (req.header.get("content-type")?.startsWith("application/connect+") ?? false);
      body = streaming ? ReadableStream.from(req.body) : await collectBytes(req.body);
    }
    const res = await fetchFn(req.url, {
      method: req.method,
      headers: req.header,
      body,
      signal: req.signal ?? null,
    });
    const streamed = res.headers.get("content-type")?.startsWith("application/connect+") ?? false;
    return {
      status: res.status,
      header: res.headers,
      // Connect needs a generator (with throw()), not the bare stream.
      body: streamed && res.body !== null ? chunksOf(res.body) : oneChunk(await res.bytes()),
      trailer: new Headers(),
    };
  };
}

async function collectBytes(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array<ArrayBuffer>> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  // One part (the usual case) goes as it is: no copy of a large body.
  if (parts.length === 1) return parts[0] as Uint8Array<ArrayBuffer>;
  return concatBytes(parts);
}

async function* chunksOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* stream;
}

async function* oneChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.byteLength > 0) yield bytes;
}
