/**
 * Unary calls in the Connect protocol's plain binary form, served without
 * Connect's handler machinery: a POST of `application/proto` with no
 * compression and no timeout header, which is what airunner's own clients
 * send for every unary call.
 *
 * Why: Connect's unary handler (handler context with copied headers and
 * linked abort signals, async-iterable body plumbing, an AbortError built
 * per call) added 0.5-0.8 ms to a job's pickup on an idle 2-core machine,
 * more than the work of an EnqueueJob itself (decode, validate, store,
 * encode); with this path an idle EnqueueJob round trip went from 1.65-1.77
 * to 1.03-1.21 ms (specs/performance.md).
 *
 * This path keeps Connect's wire behaviour: the same interceptors run in the
 * same order, the same service implementation answers, success is
 * `application/proto` with trailers muxed into `trailer-` headers, and an
 * error is Connect's JSON error body with the status its code maps to.
 * Anything it does not recognise (JSON, GET, compression, a timeout, a
 * protocol version other than 1, a body that does not parse) it declines,
 * and Connect's handler serves the call as before; tests compare both
 * paths' answers byte for byte.
 *
 * @module
 */
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  isMessage,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouterOptions,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { mergeNonProtocolHeaders } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  errorToJsonBytes,
  trailerMux,
} from "@connectrpc/connect/protocol-connect";

/** A unary method as this path calls it. */
type UnaryMethodImpl = (request: MessageShape<DescMessage>, context: HandlerContext) => unknown;
/** What an interceptor wraps. */
type Next = Parameters<Interceptor>[0];

/** A service and its implementation, as given to Connect's router. */
export interface FastPathService {
  readonly service: DescService;
  readonly impl: object;
}

/**
 * Serves one request whose body the HTTP edge has read, with the context
 * values the edge made for it (the caller), or returns undefined when the
 * request is not in the form this path handles (Connect's handler must
 * serve it).
 */
export type FastUnaryRoute = (
  req: Request,
  body: Uint8Array,
  values: ContextValues,
) => Promise<Response> | undefined;

/**
 * Whether `headers` describe a plain binary Connect unary call: the only
 * form the fast path serves. Pure, so it is tested on its own.
 */
export function isPlainBinaryUnary(method: string, headers: Headers): boolean {
  if (method !== "POST") return false;
  if (headers.get("content-type") !== "application/proto") return false;
  const encoding = headers.get("content-encoding");
  if (encoding !== null && encoding !== "identity") return false;
  if (headers.has("connect-timeout-ms")) return false;
  const version = headers.get("connect-protocol-version");
  return version === null || version === "1";
}

/** The router options the fast path reads: those given to Connect's router. */
export type FastPathRouterOptions = ConnectRouterOptions & {
  readonly interceptors: Interceptor[];
  readonly shutdownSignal: AbortSignal;
};

/**
 * Fast routes for every unary method of `services`, by request path
 * (`/job.v1.JobService/EnqueueJob`). `routerOptions` are the options of
 * Connect's router serving the same services: their interceptors run as
 * Connect runs them (the first is outermost), their shutdown signal ends
 * waits, their request gate runs before the interceptors. Throws when they
 * ask for something this path does not do (compression, a required
 * protocol header, codec options), so the two paths cannot drift apart
 * unnoticed.
 */
export function createFastUnaryRoutes(
  services: readonly FastPathService[],
  routerOptions: FastPathRouterOptions,
): Map<string, FastUnaryRoute> {
  const unsupported = [
    (routerOptions.acceptCompression?.length ?? 0) > 0 && "acceptCompression",
    routerOptions.requireConnectProtocolHeader === true && "requireConnectProtocolHeader",
    routerOptions.jsonOptions !== undefined && "jsonOptions",
    routerOptions.binaryOptions !== undefined && "binaryOptions",
    routerOptions.writeMaxBytes !== undefined && "writeMaxBytes",
  ].filter((name) => name !== false);
  if (unsupported.length > 0) {
    throw new Error(`the unary fast path does not implement ${unsupported.join(", ")}`);
  }
  const { interceptors, shutdownSignal, requestGate } = routerOptions;
  const routes = new Map<string, FastUnaryRoute>();
  for (const { service, impl } of services) {
    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (typeof fn !== "function") continue;
      const unaryImpl = (fn as UnaryMethodImpl).bind(impl);
      routes.set(
        `/${service.typeName}/${method.name}`,
        // methodKind is "unary" (checked above); DescMethod does not narrow on it.
        createRoute(method as DescMethodUnary, unaryImpl, {
          interceptors,
          shutdownSignal,
          requestGate,
        }),
      );
    }
  }
  return routes;
}

/** What a route takes from the router options. */
interface RouteDeps {
  readonly interceptors: readonly Interceptor[];
  readonly shutdownSignal: AbortSignal;
  readonly requestGate: ConnectRouterOptions["requestGate"];
}

/** One unary method with what serving it takes. */
interface RouteTarget extends RouteDeps {
  readonly method: DescMethodUnary;
  readonly service: DescService;
  readonly impl: UnaryMethodImpl;
}

function createRoute(
  method: DescMethodUnary,
  impl: UnaryMethodImpl,
  deps: RouteDeps,
): FastUnaryRoute {
  const target: RouteTarget = { ...deps, method, service: method.parent, impl };
  return (req, body, values) => {
    if (!isPlainBinaryUnary(req.method, req.headers)) return undefined;
    let message: MessageShape<DescMessage>;
    try {
      message = fromBinary(method.input, body);
    } catch {
      // Connect's handler words this error; leave it to it.
      return undefined;
    }
    return serve(target, req, message, values);
  };
}

async function serve(
  target: RouteTarget,
  req: Request,
  message: MessageShape<DescMessage>,
  values: ContextValues,
): Promise<Response> {
  const callSignal = new CallSignal(req, target.shutdownSignal);
  try {
    return await answer(target, req, message, values, callSignal);
  } finally {
    callSignal.end();
  }
}

async function answer(
  target: RouteTarget,
  req: Request,
  message: MessageShape<DescMessage>,
  values: ContextValues,
  callSignal: CallSignal,
): Promise<Response> {
  const { method, service, interceptors, requestGate } = target;
  const context: HandlerContext = {
    method,
    service,
    get signal() {
      return callSignal.signal;
    },
    timeoutMs: () => undefined,
    requestMethod: req.method,
    requestHeader: req.headers,
    responseHeader: new Headers({ "content-type": "application/proto" }),
    responseTrailer: new Headers(),
    protocolName: "connect",
    values,
    url: req.url,
  };
  const request: UnaryRequest = {
    stream: false,
    service,
    method,
    requestMethod: req.method,
    url: req.url,
    get signal() {
      return callSignal.signal;
    },
    header: req.headers,
    contextValues: context.values,
    message,
  };
  try {
    // As Connect: the gate runs before any interceptor; a synchronous
    // gate costs no extra turn of the event loop.
    const gated = requestGate?.(context);
    if (gated !== undefined) await gated;
    const invoke = invoker(target, context, request);
    const call = interceptors.reduceRight<Next>((next, i) => i(next), invoke);
    const response = await call(request);
    if (response.stream) throw new ConnectError("a unary call answered with a stream");
    // The headers and trailers an interceptor answered with replace the
    // context's, as in Connect.
    replaceHeaders(context.responseHeader, response.header);
    replaceHeaders(context.responseTrailer, response.trailer);
    return new Response(serialize(method, response.message), {
      status: 200,
      headers: trailerMux(context.responseHeader, context.responseTrailer),
    });
  } catch (e) {
    return errorResponse(e, context);
  }
}

/**
 * The innermost step of the interceptor chain. As Connect's
 * invokeUnaryImplementation: the implementation sees the request as the
 * interceptors passed it on.
 */
function invoker(
  { method, service, impl }: RouteTarget,
  context: HandlerContext,
  request: UnaryRequest,
): Next {
  return async (called) => {
    const output = await impl(
      called.message as MessageShape<DescMessage>,
      called === request ? context : {
        ...context,
        service: called.service,
        requestHeader: called.header,
        signal: called.signal,
        values: called.contextValues,
      },
    );
    const response: UnaryResponse = {
      stream: false,
      service,
      method,
      header: context.responseHeader,
      trailer: context.responseTrailer,
      message: isMessage(output, method.output)
        ? output
        : create(method.output, output as Parameters<typeof create>[1]),
    };
    return response;
  };
}

/** Connect's JSON error answer for what a call threw. */
function errorResponse(e: unknown, context: HandlerContext): Response {
  const error = e instanceof ConnectError
    ? e
    : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
  context.responseHeader.set("content-type", "application/json");
  if (!error.isWireError) mergeNonProtocolHeaders(context.responseHeader, error.metadata);
  // Connect builds the JSON with TextEncoder: plain ArrayBuffer-backed bytes.
  const json = errorToJsonBytes(error, {}) as Uint8Array<ArrayBuffer>;
  return new Response(json, {
    status: codeToHttpStatus(error.code),
    headers: trailerMux(context.responseHeader, context.responseTrailer),
  });
}

/**
 * A call's abort signal, made on first use: it follows the client's
 * request signal and the server's shutdown, and aborts when the call ends,
 * as Connect's does, so listeners the implementation left on it run and are
 * released. Made lazily because touching a Deno.serve request's signal costs
 * 0.2-0.3 ms per call on an idle server (measured), and no unary method of
 * job.v1 reads it unless a call fails. Listeners, not AbortSignal.any, link
 * it: a dependent signal per call would hang on the long-lived shutdown
 * signal.
 */
class CallSignal {
  readonly #request: Request;
  readonly #shutdown: AbortSignal;
  #controller: AbortController | undefined;
  readonly #relay = (event: Event) => this.#controller?.abort((event.target as AbortSignal).reason);

  constructor(request: Request, shutdown: AbortSignal) {
    this.#request = request;
    this.#shutdown = shutdown;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      for (const source of [this.#request.signal, this.#shutdown]) {
        if (source.aborted) this.#controller.abort(source.reason);
        else source.addEventListener("abort", this.#relay, { once: true });
      }
    }
    return this.#controller.signal;
  }

  /** Unlinks the sources and aborts the signal, if anyone asked for it. */
  end(): void {
    if (this.#controller === undefined) return;
    this.#request.signal.removeEventListener("abort", this.#relay);
    this.#shutdown.removeEventListener("abort", this.#relay);
    this.#controller.abort(CALL_ENDED);
  }
}

/**
 * The reason a call's signal aborts with when the call ends: one value, so
 * no call pays for an AbortError and its stack trace.
 */
const CALL_ENDED = new DOMException("the call has ended", "AbortError");

/** `message` in binary, failing as Connect's serializer does. */
function serialize(method: DescMethodUnary, message: MessageShape<DescMessage>) {
  try {
    return toBinary(method.output, message);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new ConnectError(`serialize binary: ${reason}`, Code.Internal);
  }
}

/** Makes `to` hold exactly `from`'s fields (Connect's copyHeaders). */
function replaceHeaders(to: Headers, from: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => to.set(key, value));
}
