/**
 * The CLI's client: the Connect protocol with JSON bodies over HTTP/1.1
 * (./http_post.ts: its own on plain http://, Deno's fetch otherwise), for
 * the calls client commands make (get, list, cancel, submit,
 * follow). It loads no npm package and no value of job_pb.ts: a call
 * through @connectrpc/connect and the protobuf runtime costs ~60 ms more
 * per process (scripts/gen_lite.ts has the figures), which a shell loop
 * pays on every call. The worker and the server keep the Connect runtime
 * (binary, HTTP/2 sessions) in src/protocol/transport.ts.
 *
 * Its methods have the signatures of Connect's generated clients, so a
 * Connect client can stand in for it (tests compare the two). Errors are
 * {@link RpcError}s that read like ConnectErrors: same code, message and
 * cause.
 *
 * @module
 */
import type { Client } from "@connectrpc/connect";
import type { JobEventsService, JobService, ScheduleService } from "../../gen/job/v1/job_pb.ts";
import {
  JobEventsServiceMethods,
  JobServiceMethods,
  type LiteMethod,
  ScheduleServiceMethods,
} from "../../gen/job/v1/job_lite.ts";
import { fromJsonValue, type JsonValue, toJsonValue } from "../protocol/json_codec.ts";
import {
  RpcCode,
  rpcCodeFromHttpStatus,
  rpcCodeFromName,
  RpcError,
  rpcErrorOf,
} from "../rpc_error.ts";
import { MAX_CLIENT_MESSAGE_BYTES } from "../protocol/limits.ts";
import { type ConnectionOptions, parseServerUrl } from "../protocol/server_url.ts";
import {
  canPostDirectly,
  fetchPost,
  http1Post,
  type HttpPost,
  type HttpReply,
} from "./http_post.ts";

/** The JobService calls client commands make. */
export type CliJobCalls = Pick<
  Client<typeof JobService>,
  "getJob" | "enqueueJob" | "enqueueJobs" | "listJobs" | "cancelJob" | "redriveJobs" | "rerunJob"
>;

/** The JobEventsService calls client commands make. */
export type CliEventCalls = Pick<Client<typeof JobEventsService>, "streamJobEvents">;

/** The ScheduleService calls (`airunner schedule`). */
export type CliScheduleCalls = Client<typeof ScheduleService>;

/** The job and event calls, what following a job takes. */
export interface CliJobClients {
  readonly jobs: CliJobCalls;
  readonly events: CliEventCalls;
}

/** The services' calls, as client commands use them. */
export interface CliClients extends CliJobClients {
  readonly schedules: CliScheduleCalls;
}

/** The call options this client honours (Connect's others are accepted and ignored). */
interface CallOptions {
  readonly signal?: AbortSignal | undefined;
  readonly timeoutMs?: number | undefined;
}

/** What every call of one client shares. */
interface Endpoint {
  readonly post: HttpPost;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number | undefined;
}

/** Clients of both services for the server `options` name. */
export function createJsonClients(options: ConnectionOptions): CliClients {
  const baseUrl = parseServerUrl(options.serverUrl);
  const direct = options.caCertPem === undefined &&
    canPostDirectly(baseUrl, (name) => Deno.env.get(name));
  const endpoint: Endpoint = {
    post: direct ? http1Post(baseUrl) : fetchPost(
      baseUrl,
      options.caCertPem === undefined
        ? undefined
        : Deno.createHttpClient({ caCerts: [options.caCertPem] }),
    ),
    headers: options.token === undefined || options.token === ""
      ? {}
      : { authorization: `Bearer ${options.token}` },
    timeoutMs: options.timeoutMs,
  };
  const unary = <I, O>(method: LiteMethod) => (request: I, opts?: CallOptions): Promise<O> =>
    unaryCall<O>(endpoint, method, request as object, opts ?? {});
  const jobs = {
    getJob: unary(JobServiceMethods.getJob),
    enqueueJob: unary(JobServiceMethods.enqueueJob),
    enqueueJobs: unary(JobServiceMethods.enqueueJobs),
    listJobs: unary(JobServiceMethods.listJobs),
    cancelJob: unary(JobServiceMethods.cancelJob),
    redriveJobs: unary(JobServiceMethods.redriveJobs),
    rerunJob: unary(JobServiceMethods.rerunJob),
  } as CliJobCalls;
  const events = {
    streamJobEvents: (request: object, opts?: CallOptions) =>
      serverStream(endpoint, JobEventsServiceMethods.streamJobEvents, request, opts ?? {}),
  } as CliEventCalls;
  const schedules = Object.fromEntries(
    Object.entries(ScheduleServiceMethods).map(([name, method]) => [name, unary(method)]),
  ) as unknown as CliScheduleCalls;
  return { jobs, events, schedules };
}

/** A call's abort signal: the caller's, and the deadline's (ending in deadline_exceeded). */
function callSignal(
  endpoint: Endpoint,
  options: CallOptions,
): { signal: AbortSignal; timeoutMs: number | undefined; abort(): void; done(): void } {
  const controller = new AbortController();
  const timeoutMs = options.timeoutMs ?? endpoint.timeoutMs;
  const onAbort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted === true) onAbort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = timeoutMs === undefined || timeoutMs <= 0 ? undefined : setTimeout(() => {
    // Connect's own words for a deadline, so both clients read alike.
    controller.abort(new RpcError("the operation timed out", RpcCode.DeadlineExceeded));
  }, timeoutMs);
  return {
    signal: controller.signal,
    timeoutMs,
    abort: () => controller.abort(),
    done: () => {
      // Guarded: clearTimeout(undefined) costs Deno 2.9 ~10 ms on a
      // process's first call (measured: getJob 27 ms vs 17 ms in-process).
      if (timer !== undefined) clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    },
  };
}

/** One POST of a call: its body, the Connect headers, the call's deadline and signal. */
function post(
  endpoint: Endpoint,
  method: LiteMethod,
  contentType: string,
  body: Uint8Array<ArrayBuffer>,
  call: { readonly signal: AbortSignal; readonly timeoutMs: number | undefined },
): Promise<HttpReply> {
  const deadline = call.timeoutMs === undefined || call.timeoutMs <= 0
    ? {}
    : { "connect-timeout-ms": String(call.timeoutMs) };
  return endpoint.post(
    method.path,
    {
      ...endpoint.headers,
      "content-type": contentType,
      "connect-protocol-version": "1",
      ...deadline,
    },
    body,
    call.signal,
  );
}

async function unaryCall<O>(
  endpoint: Endpoint,
  method: LiteMethod,
  request: object,
  options: CallOptions,
): Promise<O> {
  const call = callSignal(endpoint, options);
  try {
    const body = new TextEncoder().encode(JSON.stringify(toJsonValue(method.input, request)));
    const response = await post(endpoint, method, "application/json", body, call);
    const text = await readLimited(response.body);
    if (response.status !== 200) throw errorFromBody(response.status, text);
    expectContentType(response, "application/json");
    return decoded<O>(method.output, text);
  } catch (error) {
    throw asRpcError(error, call.signal);
  } finally {
    call.done();
  }
}

/** Flag of the envelope that ends a Connect stream (its JSON holds the error, if any). */
const END_STREAM_FLAG = 0x02;
const ENVELOPE_HEADER_BYTES = 5;

async function* serverStream<O>(
  endpoint: Endpoint,
  method: LiteMethod,
  request: object,
  options: CallOptions,
): AsyncGenerator<O> {
  const call = callSignal(endpoint, options);
  try {
    const json = new TextEncoder().encode(JSON.stringify(toJsonValue(method.input, request)));
    const response = await post(endpoint, method, "application/connect+json", envelope(json), call);
    if (response.status !== 200) {
      throw errorFromBody(response.status, await readLimited(response.body));
    }
    expectContentType(response, "application/connect+json");
    for await (const [flags, data] of envelopes(response.body)) {
      const text = new TextDecoder().decode(data);
      if ((flags & END_STREAM_FLAG) !== 0) {
        const error = (decoded<{ error?: JsonValue }>(undefined, text) ?? {}).error;
        if (error !== undefined && error !== null) throw wireError(error, RpcCode.Unknown);
        return;
      }
      yield decoded<O>(method.output, text);
    }
    throw new RpcError("the stream ended without its end-of-stream message", RpcCode.Unknown);
  } catch (error) {
    throw asRpcError(error, call.signal);
  } finally {
    // A caller that stops reading early closes the response too.
    call.abort();
    call.done();
  }
}

function tooLarge(): RpcError {
  return new RpcError(
    `the server's message is larger than ${MAX_CLIENT_MESSAGE_BYTES} bytes`,
    RpcCode.ResourceExhausted,
  );
}

/** A whole response body as text, refusing one larger than MAX_CLIENT_MESSAGE_BYTES. */
async function readLimited(body: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > MAX_CLIENT_MESSAGE_BYTES) throw tooLarge();
    parts.push(chunk);
  }
  const decoder = new TextDecoder();
  return parts.map((p, i) => decoder.decode(p, { stream: i < parts.length - 1 })).join("");
}

function envelope(data: Uint8Array): Uint8Array<ArrayBuffer> {
  const framed = new Uint8Array(ENVELOPE_HEADER_BYTES + data.byteLength);
  new DataView(framed.buffer).setUint32(1, data.byteLength);
  framed.set(data, ENVELOPE_HEADER_BYTES);
  return framed;
}

/**
 * The [flags, data] envelopes of a Connect stream body, as they arrive.
 * Chunks are kept as they came and joined once per envelope, so a large
 * message in many small chunks costs one copy, not one per chunk.
 */
async function* envelopes(body: AsyncIterable<Uint8Array>): AsyncGenerator<[number, Uint8Array]> {
  const pending = new ChunkQueue();
  for await (const chunk of body) {
    pending.push(chunk);
    while (pending.length >= ENVELOPE_HEADER_BYTES) {
      const header = pending.peek(ENVELOPE_HEADER_BYTES);
      const flags = header[0]!;
      const length = new DataView(header.buffer, header.byteOffset, 5).getUint32(1);
      if (length > MAX_CLIENT_MESSAGE_BYTES) throw tooLarge();
      if ((flags & ~END_STREAM_FLAG) !== 0) {
        // This client asks for no compression and knows no other flag.
        throw new RpcError(
          `the server sent a message with flags 0x${flags.toString(16)}`,
          RpcCode.Internal,
        );
      }
      if (pending.length < ENVELOPE_HEADER_BYTES + length) break;
      pending.take(ENVELOPE_HEADER_BYTES);
      yield [flags, pending.take(length)];
    }
  }
}

/** Bytes received and not read yet, as the chunks they came in. */
class ChunkQueue {
  #chunks: Uint8Array[] = [];
  length = 0;

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.length += chunk.byteLength;
  }

  /** The next `n` bytes (n <= length), without taking them. */
  peek(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.byteLength >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let filled = 0;
    for (const chunk of this.#chunks) {
      const part = chunk.subarray(0, n - filled);
      out.set(part, filled);
      filled += part.byteLength;
      if (filled === n) break;
    }
    return out;
  }

  /** Takes the next `n` bytes (n <= length). */
  take(n: number): Uint8Array {
    const out = this.peek(n);
    let left = n;
    while (left > 0) {
      const first = this.#chunks[0]!;
      if (first.byteLength <= left) {
        this.#chunks.shift();
        left -= first.byteLength;
      } else {
        this.#chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    this.length -= n;
    return out;
  }
}

/**
 * A 200 answer that is not what the call expects (a proxy's page, the wrong
 * URL) fails as internal, like Connect's client, instead of being parsed.
 */
function expectContentType(response: HttpReply, expected: string): void {
  const type = response.contentType;
  if (type.split(";")[0]!.trim().toLowerCase() !== expected) {
    throw new RpcError(
      `the server answered with content type "${type}", not ${expected}`,
      RpcCode.Internal,
    );
  }
}

/** `text` as the message `typeName` (or as plain JSON, for no type); internal if it is not. */
function decoded<T>(typeName: string | undefined, text: string): T {
  try {
    const json = JSON.parse(text) as JsonValue;
    return typeName === undefined ? json as T : fromJsonValue<T>(typeName, json);
  } catch (error) {
    throw new RpcError(
      `the server's answer does not decode: ${(error as Error).message}`,
      RpcCode.Internal,
      { cause: error },
    );
  }
}

/** The error an unsuccessful HTTP response stands for: its Connect error body, or its status. */
function errorFromBody(status: number, text: string): RpcError {
  const fallback = rpcCodeFromHttpStatus(status);
  try {
    return wireError(JSON.parse(text) as JsonValue, fallback);
  } catch {
    return new RpcError(`HTTP ${status}`, fallback);
  }
}

function wireError(json: JsonValue, fallback: RpcError["code"]): RpcError {
  const body = (json ?? {}) as { code?: unknown; message?: unknown };
  if (typeof body.code !== "string") throw new TypeError("not a Connect error");
  const code = rpcCodeFromName(body.code) ?? fallback;
  return new RpcError(typeof body.message === "string" ? body.message : "", code);
}

/** Any failure of a call as an RpcError, the way Connect's client turns them into ConnectErrors. */
function asRpcError(error: unknown, signal: AbortSignal): RpcError {
  if (signal.aborted && rpcErrorOf(signal.reason) !== undefined) return signal.reason as RpcError;
  if (error instanceof RpcError) return error;
  if (error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError")) {
    return new RpcError(error.message, RpcCode.Canceled, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new RpcError(message, RpcCode.Unknown, { cause: error });
}
