/**
 * How the CLI's client sends one POST and reads its answer: over Deno's
 * fetch, or, for a plain http:// server reached without a proxy, over one
 * TCP connection speaking HTTP/1.1 itself.
 *
 * Why the second: a process's first fetch costs ~12 ms before a byte is
 * sent, for Deno to load its fetch, Headers and Request code (measured on the
 * 2-core machine, Deno 2.9.6: `new Headers()` 3.2 ms, `new Request()` 4.0 ms,
 * the fetch call 4.5 ms, each the first in the process), and every client
 * command pays it once. The same request over `Deno.connect` takes 2.4 ms in
 * all. That is a quarter of `airunner get`'s whole budget over an empty
 * script (45 ms). HTTPS, a private CA, proxies (HTTP_PROXY, ALL_PROXY) and
 * traced runs (OTEL_DENO) stay with fetch, which does them properly.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";

/** An answer as the client reads it: status, content type, and the body's bytes as they arrive. */
export interface HttpReply {
  readonly status: number;
  /** The content-type header ("" when absent). */
  readonly contentType: string;
  /** The body; a reader that stops early closes the connection. */
  readonly body: AsyncIterable<Uint8Array>;
}

/** Sends one POST to `path` (below the server URL); resolves once the answer's head arrived. */
export type HttpPost = (
  path: string,
  headers: Readonly<Record<string, string>>,
  body: Uint8Array<ArrayBuffer>,
  signal: AbortSignal,
) => Promise<HttpReply>;

/** The fetch-based post, for any server URL. */
export function fetchPost(baseUrl: string, client?: Deno.HttpClient): HttpPost {
  return async (path, headers, body, signal) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method: "POST",
      headers,
      body,
      signal,
      ...(client === undefined ? {} : { client }),
    });
    return {
      status: response.status,
      contentType: response.headers.get("content-type") ?? "",
      body: response.body ?? emptyBody(),
    };
  };
}

/** Environment variables that send fetch through a proxy. */
const PROXY_VARIABLES = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/**
 * Whether {@link http1Post} can serve `baseUrl`: plain http://, no proxy
 * configured (fetch honours one; this client does not speak to proxies),
 * and Deno's OpenTelemetry off (its fetch sends the trace context that joins
 * the server's spans to the command's trace).
 */
export function canPostDirectly(
  baseUrl: string,
  env: (name: string) => string | undefined,
): boolean {
  if (!baseUrl.startsWith("http://")) return false;
  const otel = (env("OTEL_DENO") ?? "").toLowerCase();
  if (otel !== "" && otel !== "false" && otel !== "0") return false;
  return PROXY_VARIABLES.every((name) => (env(name) ?? "") === "");
}

/** Most bytes of a response's status line and headers. */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;
/** An idle connection older than this is closed, not reused (the server may be closing it). */
const MAX_IDLE_REUSE_MS = 1_000;

/** The head of an HTTP/1.1 response. */
export interface ResponseHead {
  readonly status: number;
  /** Header names in lower case; a repeated header's values joined with ", ". */
  readonly headers: ReadonlyMap<string, string>;
}

/** Why an answer could not be read as HTTP/1.1. */
export class HttpProtocolError extends Error {
  constructor(problem: string) {
    super(`the server's HTTP answer ${problem}`);
    this.name = "HttpProtocolError";
  }
}

/** The request head of a POST of `contentLength` bytes. */
export function requestHead(
  path: string,
  host: string,
  headers: Readonly<Record<string, string>>,
  contentLength: number,
): string {
  let head = `POST ${path} HTTP/1.1\r\nhost: ${host}\r\ncontent-length: ${contentLength}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) {
      throw new TypeError(`header ${JSON.stringify(name)} holds a line break`);
    }
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}

/** Parses a response head (without its closing blank line). */
export function parseResponseHead(text: string): ResponseHead {
  const lines = text.split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? "");
  if (status === null) throw new HttpProtocolError(`has no status line (${lines[0]})`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpProtocolError(`has a malformed header line`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const before = headers.get(name);
    headers.set(name, before === undefined ? value : `${before}, ${value}`);
  }
  return { status: Number(status[1]), headers };
}

/** How a response's body is delimited. */
export type BodyFraming =
  | { readonly kind: "length"; readonly bytes: number }
  | { readonly kind: "chunked" }
  | { readonly kind: "close" };

/** The framing of a response's body (RFC 9112 section 6.3). */
export function bodyFraming(head: ResponseHead): BodyFraming {
  const encoding = head.headers.get("transfer-encoding");
  if (encoding !== undefined) {
    if (encoding.toLowerCase() !== "chunked") {
      throw new HttpProtocolError(`has transfer-encoding "${encoding}", not chunked`);
    }
    return { kind: "chunked" };
  }
  const length = head.headers.get("content-length");
  if (length !== undefined) {
    if (!/^\d{1,15}$/.test(length)) {
      throw new HttpProtocolError(`has content-length "${length}"`);
    }
    return { kind: "length", bytes: Number(length) };
  }
  if (head.status === 204 || head.status === 304) return { kind: "length", bytes: 0 };
  return { kind: "close" };
}

/**
 * Decodes a chunked body as its bytes arrive: `push` returns the data it
 * completes; `done` is set once the last chunk and trailers were read.
 */
export class ChunkedDecoder {
  #buffer: Uint8Array = new Uint8Array(0);
  /** Data bytes left in the current chunk; -1 while reading a size line. */
  #left = -1;
  /** After a chunk's data, its CRLF is still to come. */
  #crlfDue = false;
  #inTrailers = false;
  done = false;

  /** Bytes received past the body's end (0 for a well-framed answer). */
  get leftoverBytes(): number {
    return this.done ? this.#buffer.byteLength : 0;
  }

  push(bytes: Uint8Array): Uint8Array[] {
    this.#buffer = this.#buffer.byteLength === 0 ? bytes : concatBytes([this.#buffer, bytes]);
    const out: Uint8Array[] = [];
    while (!this.done) {
      if (this.#left > 0) {
        if (this.#buffer.byteLength === 0) break;
        const take = Math.min(this.#left, this.#buffer.byteLength);
        out.push(this.#buffer.subarray(0, take));
        this.#buffer = this.#buffer.subarray(take);
        this.#left -= take;
        if (this.#left === 0) this.#crlfDue = true;
        continue;
      }
      const line = this.#nextLine();
      if (line === undefined) break;
      if (this.#crlfDue) {
        if (line !== "") throw new HttpProtocolError("has a chunk not followed by CRLF");
        this.#crlfDue = false;
        this.#left = -1;
        continue;
      }
      if (this.#inTrailers) {
        if (line === "") this.done = true;
        continue;
      }
      const size = /^([0-9a-fA-F]{1,8})(?:;.*)?$/.exec(line);
      if (size === null) throw new HttpProtocolError("has a malformed chunk size");
      this.#left = parseInt(size[1]!, 16);
      if (this.#left === 0) this.#inTrailers = true;
    }
    return out;
  }

  /** The next CRLF-ended line, or undefined until it has arrived whole. */
  #nextLine(): string | undefined {
    const end = indexOfCrlf(this.#buffer);
    if (end < 0) {
      if (this.#buffer.byteLength > MAX_RESPONSE_HEAD_BYTES) {
        throw new HttpProtocolError("has a chunk line that does not end");
      }
      return undefined;
    }
    const line = new TextDecoder().decode(this.#buffer.subarray(0, end));
    this.#buffer = this.#buffer.subarray(end + 2);
    return line;
  }
}

/**
 * The post over HTTP/1.1 on a TCP connection of its own, for `baseUrl`
 * (http://, checked by {@link canPostDirectly}). Calls run one at a time on
 * a connection; one left idle by a finished call is reused by the next
 * within a second, so `submit --follow` opens one or two, not three.
 */
export function http1Post(baseUrl: string): HttpPost {
  const url = new URL(baseUrl);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port === "" ? 80 : Number(url.port);
  const prefix = url.pathname.replace(/\/+$/, "");
  let idle: { conn: Deno.TcpConn; since: number } | undefined;
  /** A connection left idle within the last second, if any (an older one is closed). */
  const takeIdle = (): Deno.TcpConn | undefined => {
    const reusable = idle;
    idle = undefined;
    if (reusable === undefined) return undefined;
    if (performance.now() - reusable.since <= MAX_IDLE_REUSE_MS) return reusable.conn;
    reusable.conn.close();
    return undefined;
  };
  const connect = async (signal: AbortSignal): Promise<Deno.TcpConn> => {
    const conn = await Deno.connect({ hostname, port, signal });
    conn.setNoDelay(true);
    return conn;
  };
  /** One exchange on `conn`; `answered` is set once the server sent a byte. */
  const exchange = async (
    conn: Deno.TcpConn,
    request: Uint8Array,
    signal: AbortSignal,
    answered: { value: boolean },
  ): Promise<HttpReply> => {
    const closer = onceCloser(conn);
    const onAbort = () => closer.close();
    signal.addEventListener("abort", onAbort, { once: true });
    const release = (reuse: boolean) => {
      signal.removeEventListener("abort", onAbort);
      if (!reuse || closer.closed) {
        closer.close();
        return;
      }
      // Calls at once each had a connection; keep one idle, close the rest.
      idle?.conn.close();
      idle = { conn, since: performance.now() };
    };
    try {
      // An abort before the listener was added closes nothing by itself.
      signal.throwIfAborted();
      await writeAll(conn, request);
      const { head: response, rest } = await readHead(conn, answered);
      const framing = bodyFraming(response);
      const reusable = framing.kind !== "close" &&
        !/\bclose\b/i.test(response.headers.get("connection") ?? "");
      return {
        status: response.status,
        contentType: response.headers.get("content-type") ?? "",
        body: readBody(conn, framing, rest, signal, (complete) => release(complete && reusable)),
      };
    } catch (error) {
      release(false);
      signal.throwIfAborted();
      throw error;
    }
  };
  return async (path, headers, body, signal) => {
    signal.throwIfAborted();
    const request = concatBytes([
      new TextEncoder().encode(requestHead(`${prefix}${path}`, url.host, headers, body.byteLength)),
      body,
    ]);
    const reused = takeIdle();
    if (reused !== undefined) {
      const answered = { value: false };
      try {
        return await exchange(reused, request, signal, answered);
      } catch (error) {
        // The server closed the idle connection as the request went out: it
        // read none of it, so it goes again on a new connection, once.
        if (answered.value || signal.aborted || !isConnectionGone(error)) throw error;
      }
    }
    return await exchange(await connect(signal), request, signal, { value: false });
  };
}

/** Whether `error` says the connection was closed or reset under the call. */
function isConnectionGone(error: unknown): boolean {
  return error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe;
}

/** Reads the response head; returns it and the bytes after it. */
async function readHead(
  conn: Deno.Conn,
  answered: { value: boolean },
): Promise<{ head: ResponseHead; rest: Uint8Array }> {
  let received: Uint8Array = new Uint8Array(0);
  for (;;) {
    const chunk = await readChunk(conn);
    if (chunk === null) {
      throw new Deno.errors.UnexpectedEof("the server closed the connection before answering");
    }
    answered.value = true;
    // Search only the new bytes (and the 3 before them): a server trickling
    // its head a byte at a time costs linear time, not quadratic.
    const from = Math.max(0, received.byteLength - 3);
    received = received.byteLength === 0 ? chunk : concatBytes([received, chunk]);
    const end = indexOf(received, HEAD_END, from);
    if (
      end > MAX_RESPONSE_HEAD_BYTES || (end < 0 && received.byteLength > MAX_RESPONSE_HEAD_BYTES)
    ) {
      throw new HttpProtocolError(`head is larger than ${MAX_RESPONSE_HEAD_BYTES} bytes`);
    }
    if (end >= 0) {
      const text = new TextDecoder().decode(received.subarray(0, end));
      return { head: parseResponseHead(text), rest: received.subarray(end + 4) };
    }
  }
}

/** The body's bytes; `finished(complete)` runs once, when it is read whole or abandoned. */
async function* readBody(
  conn: Deno.Conn,
  framing: BodyFraming,
  first: Uint8Array,
  signal: AbortSignal,
  finished: (complete: boolean) => void,
): AsyncGenerator<Uint8Array> {
  // Read whole with nothing after it: bytes past the body mean the two ends
  // disagree on its framing, so the connection is not reused.
  let complete = false;
  try {
    if (framing.kind === "length") {
      let left = framing.bytes;
      let extra = false;
      for (let chunk: Uint8Array | null = first;;) {
        const part = chunk.subarray(0, left);
        left -= part.byteLength;
        extra ||= chunk.byteLength > part.byteLength;
        if (part.byteLength > 0) yield part;
        if (left === 0) break;
        chunk = await readChunk(conn);
        if (chunk === null) throw new Deno.errors.UnexpectedEof("the answer ended early");
      }
      complete = !extra;
    } else if (framing.kind === "chunked") {
      const decoder = new ChunkedDecoder();
      let chunk: Uint8Array | null = first;
      while (!decoder.done) {
        if (chunk === null) throw new Deno.errors.UnexpectedEof("the answer ended early");
        for (const data of decoder.push(chunk)) yield data;
        if (!decoder.done) chunk = await readChunk(conn);
      }
      complete = decoder.leftoverBytes === 0;
    } else {
      if (first.byteLength > 0) yield first;
      for (let chunk = await readChunk(conn); chunk !== null; chunk = await readChunk(conn)) {
        yield chunk;
      }
    }
  } catch (error) {
    // The caller's abort closed the connection under the read.
    signal.throwIfAborted();
    throw error;
  } finally {
    finished(complete);
  }
}

const READ_BUFFER_BYTES = 64 * 1024;
/** Each connection's read buffer (calls on one connection run one at a time). */
const readBuffers = new WeakMap<Deno.Conn, Uint8Array>();

/**
 * The next bytes from `conn`, or null at its end. A copy of what arrived,
 * so a server trickling bytes cannot make each one hold a whole buffer.
 */
async function readChunk(conn: Deno.Conn): Promise<Uint8Array | null> {
  let buffer = readBuffers.get(conn);
  if (buffer === undefined) {
    buffer = new Uint8Array(READ_BUFFER_BYTES);
    readBuffers.set(conn, buffer);
  }
  const n = await conn.read(buffer);
  return n === null ? null : buffer.slice(0, n);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.byteLength;) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** Closes `conn` once, however many times it is asked. */
function onceCloser(conn: Deno.Conn): { close(): void; readonly closed: boolean } {
  let closed = false;
  return {
    close() {
      if (closed) return;
      closed = true;
      conn.close();
    },
    get closed() {
      return closed;
    },
  };
}

const HEAD_END = new Uint8Array([13, 10, 13, 10]);

function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i + needle.byteLength <= haystack.byteLength; i++) {
    for (let j = 0; j < needle.byteLength; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

function indexOfCrlf(bytes: Uint8Array): number {
  for (let i = 0; i + 1 < bytes.byteLength; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10) return i;
  }
  return -1;
}

async function* emptyBody(): AsyncGenerator<Uint8Array> {}
