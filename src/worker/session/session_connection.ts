/**
 * The worker's session connection: one stream at a time, each on a
 * connection of its own, bounded in how long it may take to open and how
 * long the server may stay silent; and the loop that reconnects with
 * backoff, or gives up on sessions for good when the server cannot hold one.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  JobService,
  SessionOpenSchema,
  type WorkerSessionRequest,
  type WorkerSessionResponse,
} from "../../../gen/job/v1/job_pb.ts";
import type { Clock } from "../../clock.ts";
import type { Logger } from "../../logger.ts";
import { retry } from "../../retry.ts";
import { type ConnectionOptions, createClosableTransport } from "../../protocol/transport.ts";
import { SessionWatchdog } from "../../protocol/session.ts";
import { RequestChannel } from "./session_framing.ts";

/** The stream could not open within the open timeout: it is not full duplex. */
export class SessionOpenTimeoutError extends Error {
  constructor(ms: number) {
    super(`the server sent nothing within ${ms} ms of opening a session`);
    this.name = "SessionOpenTimeoutError";
  }
}

/** An open session went quiet for longer than the server's heartbeats allow. */
export class SessionSilentError extends Error {
  constructor(ms: number) {
    super(`heard nothing from the server for ${ms} ms; taking the connection for dead`);
    this.name = "SessionSilentError";
  }
}

/** How one stream ended: whether it opened, and why it ended. */
export interface StreamEnd {
  readonly opened: boolean;
  readonly error: unknown;
}

/** What one stream needs. */
export interface SessionStreamOptions {
  readonly connection: ConnectionOptions;
  /** Ends the stream (the worker closes). */
  readonly closing: AbortSignal;
  readonly openTimeoutMs: number;
  /** This side's heartbeat interval, announced in the open message. */
  readonly heartbeatMs: number;
  /** The queues to serve, in order of preference (at least one). */
  readonly queues: readonly string[];
  readonly visibilityTimeoutSeconds: number;
  /** Recorded by the server in the attempts this worker runs. */
  readonly workerName: string;
  /**
   * The stream starts on `requests`: the messages it sends first (at least
   * one; the first gets the open message).
   */
  readonly started: (requests: RequestChannel) => WorkerSessionRequest[];
  /** The server's first message arrived: the stream is open both ways. */
  readonly opened: () => void;
  readonly received: (res: WorkerSessionResponse) => void;
  /** The stream is over; called before its request side closes. */
  readonly ended: () => void;
}

/** Runs one stream to its end; says whether it opened and why it ended. */
export async function runSessionStream(options: SessionStreamOptions): Promise<StreamEnd> {
  // Each stream on a connection of its own: after a connection went
  // silent, HTTP/2 would otherwise open the next stream on that same one.
  const connection = createClosableTransport({ ...options.connection, http2Only: true });
  const client = createClient(JobService, connection.transport);
  // A connection that died without a word (no FIN, no RST) would leave an
  // idle worker waiting forever: heartbeats both ways bound the silence.
  // The limit comes from the interval the server announced in its first
  // message (none from a server that sends no heartbeats).
  const watchdog = new SessionWatchdog(performance.now());
  const requests = new RequestChannel(() => watchdog.sent());
  const abort = new AbortController();
  const onClose = () => abort.abort();
  options.closing.addEventListener("abort", onClose, { once: true });
  const { openTimeoutMs, heartbeatMs } = options;
  const openTimer = setTimeout(
    () => abort.abort(new SessionOpenTimeoutError(openTimeoutMs)),
    openTimeoutMs,
  );
  const messages = options.started(requests);
  const [queue = "", ...more] = options.queues;
  messages[0]!.open = create(SessionOpenSchema, {
    queue,
    // A one-queue open stays as it always was; a server that predates
    // `queues` serves `queue` (the first) alone.
    ...(more.length === 0 ? {} : { queues: [...options.queues] }),
    visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
    heartbeatMs,
    workerName: options.workerName,
  });
  for (const message of messages) requests.push(message);
  let opened = false;
  const heartbeat = setInterval(() => {
    if (!opened) return;
    const verdict = watchdog.tick(performance.now());
    if (verdict === "silent") abort.abort(new SessionSilentError(watchdog.silenceLimitMs));
    else if (verdict === "heartbeat") requests.pushHeartbeat();
  }, heartbeatMs);
  try {
    const responses = client.workerSession(requests, { signal: abort.signal });
    for await (const res of responses) {
      watchdog.heard(performance.now());
      if (!opened) {
        opened = true;
        watchdog.expectHeartbeatsEvery(res.heartbeatMs);
        clearTimeout(openTimer);
        options.opened();
      }
      options.received(res);
    }
    return { opened, error: new ConnectError("the server ended the session", Code.Unavailable) };
  } catch (error) {
    const reason = abort.signal.reason;
    const ownReason = reason instanceof SessionOpenTimeoutError ||
      reason instanceof SessionSilentError;
    return { opened, error: ownReason ? reason : error };
  } finally {
    clearTimeout(openTimer);
    clearInterval(heartbeat);
    connection.close();
    options.closing.removeEventListener("abort", onClose);
    options.ended();
    requests.close();
  }
}

/** What the reconnect loop needs. */
export interface ConnectionLoopOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Ends the loop (and its wait between streams). */
  readonly closing: AbortSignal;
  /** Whether close() has begun: no reconnecting. */
  readonly stopping: () => boolean;
  readonly runStream: () => Promise<StreamEnd>;
  /** Whether a stream that never opened may still switch the worker to unary calls. */
  readonly mayFallBack: () => boolean;
  /** Switches the worker to unary calls for good. */
  readonly fallBack: () => void;
}

/** Keeps a stream open until close, reconnecting with backoff; may switch to unary. */
export async function keepSessionConnected(options: ConnectionLoopOptions): Promise<void> {
  const { closing, stopping, logger } = options;
  try {
    await retry(async () => {
      if (closing.aborted || stopping()) return;
      const { opened, error } = await options.runStream();
      if (closing.aborted || stopping()) return;
      // Only the first stream decides: a session that worked once is
      // worth reconnecting to.
      if (!opened && options.mayFallBack() && cannotHoldSession(error)) {
        logger.warn(
          { err: error },
          "the server cannot hold a worker session (no full-duplex HTTP/2); using unary calls",
        );
        options.fallBack();
        return;
      }
      throw new StreamEndedError(opened, error);
    }, {
      // Every end of a stream is reconnected to (only a rejection of
      // runStream itself, a bug, is not); the backoff starts over after a
      // session that was established.
      isRetryable: (error) => error instanceof StreamEndedError,
      startsOver: (error) => error instanceof StreamEndedError && error.opened,
      onRetry: (error, retryInMs) =>
        logger.warn(
          { err: error instanceof StreamEndedError ? error.error : error, retryInMs },
          "worker session ended; reconnecting",
        ),
      clock: options.clock,
      signal: closing,
    });
  } catch (error) {
    // Closing cut the wait before a reconnect short: the loop is over.
    if (!(error instanceof StreamEndedError)) throw error;
  }
}

/** A stream ended and is to be reconnected: carries how it ended through {@link retry}. */
class StreamEndedError extends Error {
  constructor(readonly opened: boolean, readonly error: unknown) {
    super("worker session ended", { cause: error });
    this.name = "StreamEndedError";
  }
}

/**
 * Whether a stream that never opened says the server cannot hold a session
 * at all (so retrying would not help): no such procedure, no HTTP/2 (an
 * HTTP/1.1 server answers the HTTP/2 preface with garbage, a TLS server
 * without h2 fails the ALPN), or no full duplex on the way.
 */
export function cannotHoldSession(error: unknown): boolean {
  if (error instanceof SessionOpenTimeoutError) return true;
  const connectError = ConnectError.from(error);
  if (connectError.code === Code.Unimplemented) return true;
  let text = connectError.message;
  for (let cause = connectError.cause, depth = 0; cause !== undefined && depth < 5; depth++) {
    text += ` ${String(cause)}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return /frame with invalid size|http2 error|HTTP\/2|protocol error|ALPN|application protocol/i
    .test(text);
}
