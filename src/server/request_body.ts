/**
 * Request bodies as the HTTP edge reads them: as bytes arrive, with the
 * size limit applied to what has arrived (never to what a header promises),
 * and with a limit on silence.
 *
 * Why not `req.bytes()` and Connect's readers: both allocate what the
 * request declares before any of it arrives (`req.bytes()` a buffer of the
 * Content-Length, Connect a buffer of each envelope's length), so a client
 * that declares 8 MiB and sends one byte pinned 8 MiB; 200 such connections
 * took a server past 1.6 GiB. Nothing timed a body either, so such a call
 * waited forever.
 *
 * What a silent body gets: an answer (DeadlineExceeded) after the idle
 * timeout, and the server lets go of the call. The TCP connection itself
 * stays open until the client closes it: Deno 2.9.6 cannot cancel a body
 * read once it waits on the socket (cancelling only sets a flag that the
 * read checks when bytes arrive) and gives a handler no way to close a
 * connection.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";
import type { IdleWatch, IdleWatchdog } from "./idle_watchdog.ts";
import { nestsDeeperThan } from "./json_depth.ts";
import { MAX_JSON_DEPTH } from "../protocol/limits.ts";

/** Why a request body was refused; error_mapping.ts gives each its Connect code. */
export type RequestBodyErrorCode =
  | "body_too_large"
  | "body_incomplete"
  | "body_idle"
  | "json_too_deep";

/** A request body the edge will not hand on. */
export class RequestBodyError extends Error {
  readonly code: RequestBodyErrorCode;

  constructor(code: RequestBodyErrorCode, message: string) {
    super(message);
    this.name = "RequestBodyError";
    this.code = code;
  }
}

/** What every body read obeys. */
export interface BodyLimits {
  /** Largest body (unary) or message (stream), in bytes. */
  readonly maxBytes: number;
  /** Longest silence while the server waits for bytes. */
  readonly idleTimeoutMs: number;
  readonly watchdog: IdleWatchdog;
}

/**
 * Bodies that declare at most this many bytes are read with one
 * `req.bytes()`, which allocates the declared length up front: no more
 * than a streamed read of a larger body holds, and `req.bytes()` costs
 * about 25 µs less CPU per call than a reader (measured: 40 against 64 µs
 * per bare request). Such a body must arrive whole within the idle timeout.
 */
const READ_AT_ONCE_BYTES = 64 * 1024;

/**
 * Bytes asked for by each read of a larger body or a stream. Deno's own
 * reads hold a 64 KiB buffer while they wait (about 200 KiB per waiting
 * connection, measured); reads into buffers of ours of this size brought
 * 200 waiting connections down to +15 MiB of server RSS.
 */
const READ_BYTES = 16 * 1024;

const EMPTY = new Uint8Array(0);

/** The Content-Length a request declares, if it declares a valid one. */
function declaredLength(headers: Headers): number | undefined {
  const header = headers.get("content-length");
  if (header === null) return undefined;
  const length = Number(header);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

function tooLarge(what: string, maxBytes: number): RequestBodyError {
  return new RequestBodyError(
    "body_too_large",
    `${what} is larger than the limit of ${maxBytes} bytes`,
  );
}

function idle(limits: BodyLimits): RequestBodyError {
  return new RequestBodyError(
    "body_idle",
    `no request bytes arrived for ${limits.idleTimeoutMs} ms, the longest the server waits ` +
      `for the next bytes of a request body`,
  );
}

function incomplete(declared: number | undefined): RequestBodyError {
  return new RequestBodyError(
    "body_incomplete",
    declared === undefined
      ? "the request body was cut off before its end"
      : `the request body ended before the ${declared} bytes its Content-Length declared`,
  );
}

/** The error for a JSON message that nests deeper than MAX_JSON_DEPTH. */
export function jsonTooDeep(): RequestBodyError {
  return new RequestBodyError(
    "json_too_deep",
    `request JSON nests objects and arrays deeper than the limit of ${MAX_JSON_DEPTH} levels`,
  );
}

/**
 * Whether a request declares a body larger than `maxBytes`: refused
 * before any of it is read.
 */
export function declaresTooMuch(req: Request, maxBytes: number): RequestBodyError | undefined {
  const declared = declaredLength(req.headers);
  if (declared === undefined || declared <= maxBytes) return undefined;
  return tooLarge(`request body of ${declared} bytes`, maxBytes);
}

/**
 * The whole body of a unary request, within `limits` (the declared length
 * is checked with {@link declaresTooMuch} first).
 * @throws {RequestBodyError} when it sends too much, stops short, or falls
 * silent.
 */
export async function readUnaryBody(req: Request, limits: BodyLimits): Promise<Uint8Array> {
  const declared = declaredLength(req.headers);
  // Before req.body: touching it makes Deno build a ReadableStream, which
  // cost 35-40 µs of CPU per call (measured), more than the rest of the edge.
  if (declared !== undefined && declared <= READ_AT_ONCE_BYTES) {
    return await readAtOnce(req, declared, limits);
  }
  const body = req.body;
  if (body === null) return EMPTY;
  const reader = new WatchedReader(body, limits);
  const chunks: Uint8Array[] = [];
  let total = 0;
  reader.arm();
  try {
    for (;;) {
      const chunk = await reader.read(declared);
      if (chunk === undefined) break;
      total += chunk.byteLength;
      if (total > limits.maxBytes) {
        reader.cancel();
        throw tooLarge("request body", limits.maxBytes);
      }
      chunks.push(chunk);
    }
  } finally {
    reader.disarm();
  }
  return chunks.length === 1 ? chunks[0]! : concatBytes(chunks);
}

function readAtOnce(req: Request, declared: number, limits: BodyLimits): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    // bytes() cannot be cancelled: a silent body is answered and left to
    // end with its connection.
    const watch = limits.watchdog.watch(limits.idleTimeoutMs, () => reject(idle(limits)));
    req.bytes().then((bytes) => {
      watch.stop();
      resolve(bytes);
    }, () => {
      watch.stop();
      reject(incomplete(declared));
    });
  });
}

/**
 * A body reader whose silence is timed while it is armed: a read pending
 * when the watch expires ends with the idle error. Reads go into buffers
 * of READ_BYTES when the body is a byte stream (Deno's is, unless it
 * arrived whole before the handler ran).
 */
class WatchedReader {
  readonly #limits: BodyLimits;
  readonly #byob: ReadableStreamBYOBReader | undefined;
  readonly #default: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #watch: IdleWatch | undefined;
  #idle = false;

  constructor(body: ReadableStream<Uint8Array>, limits: BodyLimits) {
    this.#limits = limits;
    try {
      this.#byob = body.getReader({ mode: "byob" });
    } catch {
      this.#default = body.getReader();
    }
  }

  /** Times silence from now on (until {@link disarm}). */
  arm(): void {
    this.#watch ??= this.#limits.watchdog.watch(this.#limits.idleTimeoutMs, () => {
      this.#idle = true;
      this.#watch = undefined;
      this.cancel();
    });
  }

  disarm(): void {
    this.#watch?.stop();
    this.#watch = undefined;
  }

  /**
   * The next bytes, or undefined at the end of the body.
   * @throws {RequestBodyError} when the body breaks off or falls silent.
   */
  async read(declared: number | undefined): Promise<Uint8Array | undefined> {
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = this.#byob === undefined
        ? await this.#default!.read()
        : await this.#byob.read(new Uint8Array(READ_BYTES));
    } catch {
      throw incomplete(declared);
    }
    if (this.#idle) throw idle(this.#limits);
    if (result.done) return undefined;
    this.#watch?.touch();
    const chunk = result.value;
    // A read that filled little of its buffer would keep all of it alive.
    return this.#byob !== undefined && chunk.byteLength < READ_BYTES / 4 ? chunk.slice() : chunk;
  }

  /** Gives up on the body; a pending read ends. */
  cancel(): void {
    (this.#byob ?? this.#default)!.cancel().catch(() => {});
  }

  /** Lets go of the body without reading on (a read must not be pending). */
  release(): void {
    (this.#byob ?? this.#default)!.releaseLock();
  }
}

/** How {@link envelopedBody} reads a stream. */
export interface EnvelopeOptions {
  readonly limits: BodyLimits;
  /** Check each message's JSON nesting (a `+json` content type). */
  readonly json: boolean;
  /**
   * The request is one message (unary or server-streaming): silence is
   * timed until the body ends. Otherwise (client and bidi streams) only
   * until the first message, and within a message once it has begun:
   * between messages a live stream is the application's to judge (the
   * worker session's heartbeats).
   */
  readonly singleMessage: boolean;
}

const ENVELOPE_HEADER_BYTES = 5;
const COMPRESSED_FLAG = 0b01;

/**
 * The enveloped messages (gRPC-web, Connect streaming) of a request body,
 * each yielded as one chunk once all its bytes have arrived, so Connect's
 * envelope reader never allocates a length that was only declared.
 * @throws {RequestBodyError} for a message over the limit, a JSON message
 * nested too deep, a body that ends inside a message, or silence.
 */
export async function* envelopedBody(
  body: ReadableStream<Uint8Array> | null,
  options: EnvelopeOptions,
): AsyncGenerator<Uint8Array> {
  if (body === null) return;
  const reader = new WatchedReader(body, options.limits);
  const pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let messages = 0;
  let ended = false;
  try {
    for (;;) {
      for (;;) {
        const envelope = takeEnvelope(pending, pendingBytes, options);
        if (envelope === undefined) break;
        pendingBytes -= envelope.byteLength;
        messages++;
        // Time spent in the consumer is not the client's silence.
        reader.disarm();
        yield envelope;
      }
      if (options.singleMessage || messages === 0 || pendingBytes > 0) reader.arm();
      else reader.disarm();
      let chunk: Uint8Array | undefined;
      try {
        chunk = await reader.read(undefined);
      } catch (error) {
        ended = true;
        throw error;
      }
      if (chunk === undefined) {
        ended = true;
        if (pendingBytes > 0) {
          throw new RequestBodyError(
            "body_incomplete",
            `the request stream ended inside a message (${pendingBytes} bytes of it arrived)`,
          );
        }
        return;
      }
      pending.push(chunk);
      pendingBytes += chunk.byteLength;
    }
  } finally {
    reader.disarm();
    // Stopped early (by the consumer, or a message refused): read no more.
    if (!ended) reader.release();
  }
}

/**
 * The first envelope of `pending` when all of it has arrived (removed from
 * `pending`), undefined when more bytes are needed.
 * @throws {RequestBodyError} when its header declares more than the limit,
 * or its JSON nests too deep.
 */
function takeEnvelope(
  pending: Uint8Array[],
  pendingBytes: number,
  options: EnvelopeOptions,
): Uint8Array | undefined {
  if (pendingBytes < ENVELOPE_HEADER_BYTES) return undefined;
  if (pending[0]!.byteLength < ENVELOPE_HEADER_BYTES) {
    // Rare: a header split across reads; join the chunks once.
    pending.splice(0, pending.length, concatBytes(pending));
  }
  const first = pending[0]!;
  const length = new DataView(first.buffer, first.byteOffset, first.byteLength).getUint32(1);
  if (length > options.limits.maxBytes) {
    throw tooLarge(`request message of ${length} bytes`, options.limits.maxBytes);
  }
  const size = ENVELOPE_HEADER_BYTES + length;
  if (pendingBytes < size) return undefined;
  let envelope: Uint8Array;
  if (first.byteLength >= size) {
    envelope = first.subarray(0, size);
    if (first.byteLength === size) pending.shift();
    else pending[0] = first.subarray(size);
  } else {
    envelope = new Uint8Array(size);
    let offset = 0;
    while (offset < size) {
      const chunk = pending[0]!;
      const part = Math.min(chunk.byteLength, size - offset);
      envelope.set(chunk.subarray(0, part), offset);
      offset += part;
      if (part === chunk.byteLength) pending.shift();
      else pending[0] = chunk.subarray(part);
    }
  }
  if (
    options.json && (envelope[0]! & COMPRESSED_FLAG) === 0 &&
    nestsDeeperThan(envelope.subarray(ENVELOPE_HEADER_BYTES), MAX_JSON_DEPTH)
  ) {
    throw jsonTooDeep();
  }
  return envelope;
}
