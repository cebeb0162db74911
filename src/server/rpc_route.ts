/**
 * One RPC route at the HTTP edge, between Deno.serve and Connect: it
 * checks the caller's token from the headers, and only then reads the body, as bytes arrive and within limits of size and
 * silence (src/server/request_body.ts); a call it refuses is answered
 * without its body being read. A unary body is read whole and offered to
 * the fast path first; what that declines, Connect's handler serves.
 *
 * A refusal made here (no valid token, a body too large, cut short,
 * silent or nested too deep) travels to Connect as a context value, and
 * Connect's request gate, which runs before Connect reads anything, throws
 * it: Connect words the error for whichever protocol the client speaks.
 * A refused call's body is never read: the answer is complete without it,
 * and Deno throws away whatever of it still arrives.
 *
 * @module
 */
import {
  type ConnectError,
  createContextKey,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import {
  type UniversalHandler,
  universalServerResponseToFetch,
} from "@connectrpc/connect/protocol";
import type { ApiTokenVerifier } from "../auth/jwt.ts";
import { concatBytes } from "../bytes.ts";
import { authorizeCall } from "./authorization.ts";
import { toConnectError } from "./error_mapping.ts";
import type { IdleWatchdog } from "./idle_watchdog.ts";
import { nestsDeeperThan } from "./json_depth.ts";
import { MAX_JSON_DEPTH, MAX_MESSAGE_BYTES } from "../protocol/limits.ts";
import { correctStreamParseErrors, correctUnaryParseError } from "./malformed_requests.ts";
import {
  type BodyLimits,
  declaresTooMuch,
  envelopedBody,
  jsonTooDeep,
  readUnaryBody,
  RequestBodyError,
} from "./request_body.ts";
import type { FastUnaryRoute } from "./unary_fast_path.ts";

/** A call the edge refused, and when the edge began with it. */
export interface EdgeRefusal {
  readonly error: ConnectError;
  readonly startedMs: number;
}

/** The refusal of the current call, set by the edge for Connect's request gate. */
export const EDGE_REFUSAL = createContextKey<EdgeRefusal | undefined>(undefined, {
  description: "why the HTTP edge refused the call",
});

/**
 * Connect's request gate: throws the edge's refusal, if any, before
 * Connect reads the body. `onRefused` logs it (no interceptor sees such a
 * call).
 */
export function edgeRefusalGate(
  onRefused: (context: HandlerContext, refusal: EdgeRefusal) => void,
): (context: HandlerContext) => void {
  return (context) => {
    const refusal = context.values.get(EDGE_REFUSAL);
    if (refusal === undefined) return;
    onRefused(context, refusal);
    throw refusal.error;
  };
}

/** What every route's edge shares. */
export interface EdgeOptions {
  /** Checks each call's token before its body is read; absent: every call is accepted. */
  readonly auth: ApiTokenVerifier | undefined;
  readonly watchdog: IdleWatchdog;
  /** Longest a request body may stay silent (BODY_IDLE_TIMEOUT_MS by default). */
  readonly bodyIdleTimeoutMs: number;
}

/** How {@link toFetchHandler} serves one procedure. */
export interface RouteOptions {
  /** Send a streaming response as one buffer (see BUFFERED_STREAMS in http_server.ts). */
  readonly bufferStream: boolean;
  /** Offered every unary body first; undefined: Connect serves every call. */
  readonly fastRoute: FastUnaryRoute | undefined;
  readonly edge: EdgeOptions;
}

/** Nothing: the body of a call Connect is not to read. */
async function* noBody(): AsyncGenerator<Uint8Array> {}

async function* oneChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.byteLength > 0) yield bytes;
}

/** Whether a content type frames its messages in envelopes (Connect streaming, gRPC-web). */
function isEnveloped(contentType: string): boolean {
  return contentType.startsWith("application/connect+") ||
    contentType.startsWith("application/grpc");
}

/**
 * Adapts a Connect handler to fetch's Request and Response, with the
 * edge's checks in front (see the module doc). Unary bodies move as one
 * buffer each, which costs far less than a stream per call; streaming
 * calls stay streams. Exported for tests.
 */
export function toFetchHandler(
  handler: UniversalHandler,
  options: RouteOptions,
): (req: Request) => Promise<Response> {
  const { edge, fastRoute, bufferStream } = options;
  const procedure = `${handler.service.typeName}/${handler.method.name}`;
  const singleMessage = handler.method.methodKind === "unary" ||
    handler.method.methodKind === "server_streaming";
  const limits: BodyLimits = {
    maxBytes: MAX_MESSAGE_BYTES,
    idleTimeoutMs: edge.bodyIdleTimeoutMs,
    watchdog: edge.watchdog,
  };
  return async (req) => {
    const startedMs = performance.now();
    const values = createContextValues();
    const contentType = (req.headers.get("content-type") ?? "").toLowerCase();
    const json = contentType.includes("json");
    const connectStream = contentType.startsWith("application/connect+");
    let refusal: unknown;
    if (edge.auth !== undefined) {
      try {
        await authorizeCall(edge.auth, req.headers.get("authorization"), procedure, values);
      } catch (error) {
        refusal = error;
      }
    }
    let body: AsyncIterable<Uint8Array> = noBody();
    if (refusal === undefined && isEnveloped(contentType)) {
      body = envelopedBody(req.body, { limits, json, singleMessage });
    } else if (refusal === undefined) {
      try {
        const tooMuch = declaresTooMuch(req, limits.maxBytes);
        if (tooMuch !== undefined) throw tooMuch;
        const bytes = await readUnaryBody(req, limits);
        if (json && nestsDeeperThan(bytes, MAX_JSON_DEPTH)) throw jsonTooDeep();
        const answered = fastRoute?.(req, bytes, values);
        if (answered !== undefined) return answered;
        body = oneChunk(bytes);
      } catch (error) {
        if (!(error instanceof RequestBodyError)) throw error;
        refusal = error;
      }
    }
    if (refusal !== undefined) {
      values.set(EDGE_REFUSAL, { error: toConnectError(refusal), startedMs });
    }
    const res = await handler({
      httpVersion: "",
      method: req.method,
      url: req.url,
      header: req.headers,
      signal: req.signal,
      body,
      contextValues: values,
    });
    const failed = res.status === 500;
    if (
      res.body === undefined || (!bufferStream && !failed && !res.header?.has("content-length"))
    ) {
      return universalServerResponseToFetch(
        !connectStream || res.body === undefined
          ? res
          : { ...res, body: correctStreamParseErrors(res.body) },
      );
    }
    const chunks: Uint8Array[] = [];
    const resBody = bufferStream && connectStream ? correctStreamParseErrors(res.body) : res.body;
    for await (const chunk of resBody) chunks.push(chunk);
    // Connect's chunks are plain ArrayBuffer-backed bytes.
    const bytes = (chunks.length === 1 ? chunks[0]! : concatBytes(chunks)) as Uint8Array<
      ArrayBuffer
    >;
    const corrected = failed ? correctUnaryParseError(res.status, bytes) : undefined;
    if (corrected !== undefined) {
      const headers = new Headers(res.header ?? {});
      headers.delete("content-length");
      return new Response(corrected.body, { status: corrected.status, headers });
    }
    return new Response(bytes, { status: res.status, headers: res.header ?? {} });
  };
}
