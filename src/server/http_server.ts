/**
 * The HTTP assembly: Connect routes for both services behind `Deno.serve`,
 * `GET /health`, error translation and one log line per RPC, and a graceful
 * shutdown that ends long polls and live tails first.
 *
 * @module
 */
import {
  Code,
  ConnectError,
  createConnectRouter,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import type { ExecutionConfig, RetryPolicy } from "../../gen/job/v1/job_pb.ts";
import { JobEventsService, JobService, ScheduleService } from "../../gen/job/v1/job_pb.ts";
import type { ApiTokenVerifier } from "../auth/jwt.ts";
import type { Logger } from "../logger.ts";
import type { JobStore } from "../store/job_store.ts";
import { defaultExecutionConfig } from "./execution_config.ts";
import { isExpectedError, toConnectError } from "./error_mapping.ts";
import { createJobEventsService } from "./job_events_service.ts";
import { createJobService } from "./job_service.ts";
import { createScheduleService } from "./schedule_service.ts";
import { runScheduler } from "./scheduler.ts";
import { systemClock } from "../clock.ts";
import { CALLER } from "./authorization.ts";
import { BODY_IDLE_TIMEOUT_MS, MAX_MESSAGE_BYTES } from "../protocol/limits.ts";
import { SESSION_HEARTBEAT_MS } from "../protocol/session.ts";
import { instrumentStore } from "../telemetry/instrumented_store.ts";
import { registerAllMetrics } from "../telemetry/metrics.ts";
import { activeSpan } from "../telemetry/tracing.ts";
import { checkIntervalFor, IdleWatchdog } from "./idle_watchdog.ts";
import { type EdgeRefusal, edgeRefusalGate, toFetchHandler } from "./rpc_route.ts";
import { createFastUnaryRoutes, type FastUnaryRoute } from "./unary_fast_path.ts";

/** Options of {@link startServer}. */
export interface ServerOptions {
  readonly store: JobStore;
  readonly logger: Logger;
  /** Address to listen on; use "127.0.0.1" or "::1" for loopback only. */
  readonly hostname: string;
  /** Port to listen on; 0 picks a free one. */
  readonly port: number;
  /** Given to every new job; the wire contract's defaults when absent. */
  readonly executionConfig?: ExecutionConfig;
  /** Longest a DequeueJob waits before ending without a job (default 60 s). */
  readonly maxDequeueWaitMs?: number;
  /** How often an idle worker session says it is alive (default {@link SESSION_HEARTBEAT_MS}). */
  readonly sessionHeartbeatMs?: number;
  /** The retry policy of jobs enqueued without one (`--default-retries`); none when absent. */
  readonly defaultRetry?: RetryPolicy;
  /** Longest shutdown waits for in-flight calls to finish (default 10 s). */
  readonly shutdownTimeoutMs?: number;
  /**
   * Checks every call's API token, from its headers and before any of its
   * body is read; absent, every call is accepted (the CLI allows that only
   * with --no-auth or on loopback in `dev`).
   */
  readonly auth?: ApiTokenVerifier;
  /**
   * Longest a request body may stay silent before the server answers
   * DeadlineExceeded and ends the call (default {@link BODY_IDLE_TIMEOUT_MS});
   * live streams are timed only until their first message and within a
   * message (see src/server/request_body.ts).
   */
  readonly bodyIdleTimeoutMs?: number;
  /** Serve HTTPS (h2 and HTTP/1.1 by ALPN) with this certificate chain and key. */
  readonly tls?: { readonly certPem: string; readonly keyPem: string };
  /**
   * Serve plain binary unary calls without Connect's handler machinery (see
   * src/server/unary_fast_path.ts); default true. false sends every call
   * through Connect's handlers, which tests compare the fast path with.
   */
  readonly fastUnaryPath?: boolean;
  /**
   * Run the scheduler, which enqueues the jobs of the store's schedules at
   * their firings (default true; several servers over one store may all
   * run it, see scheduler.ts).
   */
  readonly scheduler?: boolean;
}

/** A listening server. */
export interface RunningServer extends AsyncDisposable {
  /** Base URL clients use, such as `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  /** Resolves once the server has stopped. */
  readonly finished: Promise<void>;
  /** Ends streams and long polls, waits for in-flight calls, and stops; idempotent. */
  close(): Promise<void>;
}

/** Starts serving the job.v1 API; resolves once the server listens. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { logger } = options;
  registerAllMetrics();
  const store = instrumentStore(options.store);
  const shutdown = new AbortController();
  const interceptors = [logAndTranslateErrors(logger)];
  const bodyIdleTimeoutMs = options.bodyIdleTimeoutMs ?? BODY_IDLE_TIMEOUT_MS;
  const watchdog = new IdleWatchdog(checkIntervalFor(bodyIdleTimeoutMs));
  const edge = { auth: options.auth, watchdog, bodyIdleTimeoutMs };
  const routerOptions = {
    // Deno.serve has no HTTP trailers, so native gRPC cannot work; refusing
    // it gives gRPC clients a clean 415 instead of a broken stream.
    grpc: false,
    grpcWeb: true,
    connect: true,
    readMaxBytes: MAX_MESSAGE_BYTES,
    shutdownSignal: shutdown.signal,
    interceptors,
    requestGate: edgeRefusalGate(logRefusal(logger)),
  };
  const router = createConnectRouter(routerOptions);
  const jobDefaults = {
    executionConfig: options.executionConfig ?? defaultExecutionConfig(),
    ...(options.defaultRetry === undefined ? {} : { defaultRetry: options.defaultRetry }),
  };
  const jobService = createJobService({
    store,
    logger,
    maxDequeueWaitMs: options.maxDequeueWaitMs ?? 60_000,
    sessionHeartbeatMs: options.sessionHeartbeatMs ?? SESSION_HEARTBEAT_MS,
    ...jobDefaults,
  });
  const jobEventsService = createJobEventsService({ store });
  router.service(JobService, jobService);
  router.service(JobEventsService, jobEventsService);
  router.service(
    ScheduleService,
    createScheduleService({ store, logger, clock: systemClock, ...jobDefaults }),
  );
  const schedulerStopped = options.scheduler === false
    ? Promise.resolve()
    : runScheduler({ store, logger, signal: shutdown.signal, ...jobDefaults });
  const fastRoutes = options.fastUnaryPath === false
    ? new Map<string, FastUnaryRoute>()
    : createFastUnaryRoutes([
      { service: JobService, impl: jobService },
      { service: JobEventsService, impl: jobEventsService },
    ], routerOptions);

  const routes = new Map<string, (req: Request) => Promise<Response>>();
  for (const handler of router.handlers) {
    routes.set(
      handler.requestPath,
      toFetchHandler(handler, {
        bufferStream: BUFFERED_STREAMS.has(handler.requestPath),
        fastRoute: fastRoutes.get(handler.requestPath),
        edge,
      }),
    );
  }

  const { promise: listening, resolve: onListen } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    ...(options.tls === undefined ? {} : { cert: options.tls.certPem, key: options.tls.keyPem }),
    onListen: onListen,
    onError(error) {
      logger.error({ err: error }, "request failed outside any RPC");
      return new Response("internal error", { status: 500 });
    },
  }, (req) => {
    const url = new URL(req.url);
    // Deno's span records the URL; a query string may hold a token.
    if (url.search !== "") redactQuery(url);
    const path = url.pathname;
    const route = routes.get(path);
    if (route !== undefined) return route(req);
    if (path === "/health" && (req.method === "GET" || req.method === "HEAD")) {
      return Response.json({ status: "ok" });
    }
    return new Response("not found", { status: 404 });
  });
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `${options.tls === undefined ? "http" : "https"}://${host}:${addr.port}`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      // End waits first: long polls return empty and live tails end with
      // Unavailable, so the graceful shutdown below is not held up by them.
      shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
      // Calls still running after the timeout (a client that never sends
      // its body, say) are abandoned; the process is about to exit anyway.
      const timeout = AbortSignal.timeout(options.shutdownTimeoutMs ?? 10_000);
      const stopped = await Promise.race([
        server.shutdown().then(() => server.finished).then(() => true),
        new Promise<false>((resolve) =>
          timeout.addEventListener("abort", () => resolve(false), { once: true })
        ),
      ]);
      if (!stopped) logger.warn("shutdown timed out; abandoning calls still in flight");
      await schedulerStopped;
      watchdog.close();
      store.stopObserving();
    })();
    return closing;
  };
  return {
    url,
    port: addr.port,
    finished: server.finished,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Logs each RPC once (procedure, code, duration) and turns every error into
 * the ConnectError the client should see, including errors raised while a
 * response stream is being produced.
 */
function logAndTranslateErrors(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    // From the method, never the URL: a query string may hold a token.
    const procedure = `/${req.service.typeName}/${req.method.name}`;
    // Deno.serve's span for this request is named after the HTTP method; name it after the RPC.
    const span = activeSpan();
    span?.updateName(procedure.slice(1));
    span?.setAttributes({
      "rpc.system": "connect_rpc",
      "rpc.service": req.service.typeName,
      "rpc.method": req.method.name,
    });
    let jobId = req.stream ? undefined : jobIdOf(req.message);
    const queue = req.stream ? undefined : queueOf(req.message);
    if (queue !== undefined) span?.setAttribute("airunner.queue", queue);
    const done = (error?: unknown) => {
      // A client that went away mid-call (or whose deadline passed) makes
      // the response fail to write; that is its doing, not a server fault.
      const gone = error !== undefined && req.signal.aborted && !(error instanceof ConnectError);
      const connectError = error === undefined
        ? undefined
        : gone
        ? new ConnectError("the call was cancelled", Code.Canceled)
        : toConnectError(error);
      const fields = {
        procedure,
        jobId,
        subject: req.contextValues.get(CALLER)?.subject,
        code: connectError === undefined ? "ok" : Code[connectError.code],
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      };
      if (jobId !== undefined) span?.setAttribute("airunner.job_id", jobId);
      span?.setAttribute("rpc.connect_rpc.error_code", fields.code);
      if (error !== undefined && !gone && !isExpectedError(error)) {
        logger.error({ ...fields, err: error }, "rpc failed");
      } else {
        logger.debug(fields, "rpc");
      }
      return connectError;
    };
    let res;
    try {
      res = await next(req);
    } catch (error) {
      throw done(error);
    }
    if (!res.stream) {
      jobId ??= jobIdOf(res.message);
      done();
      return res;
    }
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (error) {
          throw done(error);
        }
        done();
      })(),
    };
  };
}

/** The job a request or response message is about, if it names one. */
function jobIdOf(message: object): string | undefined {
  const m = message as {
    jobId?: unknown;
    job?: { jobId?: unknown };
    jobResult?: { jobId?: unknown };
  };
  const id = m.jobId ?? m.job?.jobId ?? m.jobResult?.jobId;
  return typeof id === "string" && id !== "" ? id : undefined;
}

/**
 * Logs a call the edge refused (no valid token, a body it would not read)
 * as the interceptor logs every other call: no interceptor sees it.
 */
function logRefusal(logger: Logger): (ctx: HandlerContext, refusal: EdgeRefusal) => void {
  return (ctx, refusal) => {
    const code = Code[refusal.error.code];
    const procedure = `/${ctx.service.typeName}/${ctx.method.name}`;
    const span = activeSpan();
    span?.updateName(procedure.slice(1));
    span?.setAttribute("rpc.connect_rpc.error_code", code);
    logger.debug({
      procedure,
      subject: ctx.values.get(CALLER)?.subject,
      code,
      durationMs: Math.round((performance.now() - refusal.startedMs) * 10) / 10,
    }, "rpc");
  };
}

/** Replaces the URL attributes of the request's span with ones without the query string. */
function redactQuery(url: URL): void {
  activeSpan()?.setAttributes({
    "url.full": `${url.origin}${url.pathname}`,
    "url.query": "[redacted]",
  });
}

/** The queue a request message names, if any. */
function queueOf(message: object): string | undefined {
  const queue = (message as { queue?: unknown }).queue;
  return typeof queue === "string" && queue !== "" ? queue : undefined;
}

/**
 * Server-streaming procedures whose whole response is sent as one buffer:
 * DequeueJob answers only once it has leased its jobs and ends right after,
 * so nothing is gained by streaming it, and one write saves the client a
 * wait for the end of the stream.
 */
const BUFFERED_STREAMS = new Set([`/${JobService.typeName}/${JobService.method.dequeueJob.name}`]);
