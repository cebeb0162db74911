/**
 * Requests whose protobuf bytes do not parse are the client's fault, so they
 * are InvalidArgument. connect-es answers them with Internal (and JSON that
 * does not parse with InvalidArgument); it parses before any interceptor
 * runs, so the answer is corrected on its way out instead: a unary error
 * body, or the end-of-stream frame of a Connect stream. Nothing else in a
 * response is touched.
 *
 * @module
 */

/** connect-es's message prefix for a request that fails binary parsing. */
const PARSE_FAILURE = "parse binary: ";
/** Connect's end-of-stream envelope flag. */
const END_STREAM_FLAG = 0b10;

interface ConnectErrorJson {
  code?: unknown;
  message?: unknown;
  [key: string]: unknown;
}

/**
 * The corrected error JSON when `json` is connect-es's Internal error for an
 * unparseable request; undefined for anything else.
 */
function correctedError(json: ConnectErrorJson): ConnectErrorJson | undefined {
  if (json.code !== "internal" || typeof json.message !== "string") return undefined;
  if (!json.message.startsWith(PARSE_FAILURE)) return undefined;
  return {
    ...json,
    code: "invalid_argument",
    message: `malformed request message: ${json.message.slice(PARSE_FAILURE.length)}`,
  };
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}

/**
 * A unary Connect error response (HTTP 500 body) rewritten to HTTP 400
 * InvalidArgument when it reports an unparseable request.
 */
export function correctUnaryParseError(
  status: number,
  body: Uint8Array,
): { status: number; body: Uint8Array<ArrayBuffer> } | undefined {
  if (status !== 500) return undefined;
  const json = parseJson(body);
  if (typeof json !== "object" || json === null) return undefined;
  const corrected = correctedError(json as ConnectErrorJson);
  if (corrected === undefined) return undefined;
  return { status: 400, body: new TextEncoder().encode(JSON.stringify(corrected)) };
}

/**
 * A Connect stream's chunks with an end-of-stream frame that reports an
 * unparseable request rewritten to InvalidArgument. connect-es writes each
 * envelope as one chunk; a chunk that is not exactly one envelope passes
 * through unchanged.
 */
export async function* correctStreamParseErrors(
  chunks: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    yield correctedEndStream(chunk) ?? chunk;
  }
}

function correctedEndStream(chunk: Uint8Array): Uint8Array | undefined {
  if (chunk.byteLength < 5 || (chunk[0]! & END_STREAM_FLAG) === 0) return undefined;
  const length = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).getUint32(1);
  if (5 + length !== chunk.byteLength) return undefined;
  const json = parseJson(chunk.subarray(5)) as { error?: ConnectErrorJson } | undefined;
  if (typeof json !== "object" || json === null || typeof json.error !== "object") {
    return undefined;
  }
  const corrected = correctedError(json.error);
  if (corrected === undefined) return undefined;
  const payload = new TextEncoder().encode(JSON.stringify({ ...json, error: corrected }));
  const out = new Uint8Array(5 + payload.byteLength);
  out[0] = chunk[0]!;
  new DataView(out.buffer).setUint32(1, payload.byteLength);
  out.set(payload, 5);
  return out;
}
