/**
 * The WorkerApi over one WorkerSession stream per worker process.
 *
 * The worker grants credits when it has room for jobs and the server pushes
 * jobs against them; lease updates, event batches and completions travel on
 * the same stream and are settled by the server's acks. Operations issued in
 * the same tick go out as one message, and a completion carries the credit
 * for the next job, so a busy worker completes one job and receives the next
 * in one exchange instead of two unary round trips.
 *
 * Every operation stays pending until its ack arrives. When the stream
 * breaks, the worker reconnects with backoff and resends every pending
 * operation on the new stream; the store makes a resend harmless (events
 * below the stored sequence are skipped, a repeated completion is accepted
 * without a change, a lease update simply applies again).
 *
 * In `auto` mode a server that cannot hold a session (HTTP/1.1 only, through
 * a proxy without full duplex, or an older airunner) is detected when the
 * stream cannot open, and the worker falls back to the unary RPCs for good,
 * replaying anything pending through them.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  type JobEvent,
  type JobResult,
  JobService,
  SessionCompletionSchema,
  SessionEventsSchema,
  SessionLeaseUpdateSchema,
  SessionOpenSchema,
  type WorkerSessionRequest,
  WorkerSessionRequestSchema,
  type WorkerSessionResponse,
} from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import { type ConnectionOptions, createClosableTransport } from "../protocol/transport.ts";
import type { Logger } from "../logger.ts";
import type { LeasedJob, LeaseUpdate } from "../protocol/job_requests.ts";
import { currentTraceparent } from "../telemetry/tracing.ts";
import { SESSION_HEARTBEAT_MS, SESSION_SILENT_HEARTBEATS } from "../protocol/limits.ts";
import { backoffDelayMs } from "../retry.ts";
import type { ClaimOptions, WorkerApi } from "./worker_api.ts";

/** Which protocol a worker speaks: a session (falling back to unary in auto), or unary only. */
export type WorkerProtocol = "auto" | "session" | "unary";

/** Options of {@link createSessionWorkerApi}. */
export interface SessionWorkerApiOptions {
  /** Where the server is; the session connects with HTTP/2 only. */
  readonly connection: ConnectionOptions;
  /** The unary API, for the fallback in `auto` mode. */
  readonly unary: WorkerApi;
  /** `auto` falls back to `unary` when no session can open; `session` keeps trying. */
  readonly mode: "auto" | "session";
  readonly clock: Clock;
  readonly logger: Logger;
  /** How long a new stream may take to say it is open (default 10 s). */
  readonly openTimeoutMs?: number;
  /**
   * Heartbeat interval (default {@link SESSION_HEARTBEAT_MS}), announced in
   * the open message: a stream that sent nothing for this long sends an empty
   * message. (A stream is taken for dead after {@link SESSION_SILENT_HEARTBEATS}
   * of the interval the server announces.)
   */
  readonly heartbeatMs?: number;
}

/** A WorkerApi that also has a connection to end. */
export interface ClosableWorkerApi extends WorkerApi {
  /** Which protocol carries the calls now. */
  readonly protocol: "session" | "unary" | "connecting";
  /** Waits for pending operations, ends the stream, and hands back jobs pushed but not claimed. */
  close(): Promise<void>;
}

/** Most operations sent in one message (the server takes up to 1,000). */
const MAX_OPS_PER_MESSAGE = 500;
/**
 * Small operations share messages up to this size. Deno's fetch cannot turn
 * off Nagle's algorithm, and its HTTP/2 layer writes a larger message as two
 * segments, the second of which waits for the server's delayed ACK (up to
 * 40 ms); messages under 1 KiB go out in one segment at once. Measured on one
 * session: 1,300 jobs/s with 500 operations per message, 2,900 with small
 * messages.
 */
const SMALL_MESSAGE_BYTES = 1000;

/** Completions remembered so that a retried one grants no second credit. */
const MAX_REMEMBERED_COMPLETIONS = 10_000;
/** Longest close waits for pending operations before it ends the stream anyway. */
const CLOSE_WAIT_MS = 10_000;

/** The stream could not open within the open timeout: it is not full duplex. */
class SessionOpenTimeoutError extends Error {
  constructor(ms: number) {
    super(`the server sent nothing within ${ms} ms of opening a session`);
    this.name = "SessionOpenTimeoutError";
  }
}

/** An open session went quiet for longer than the server's heartbeats allow. */
class SessionSilentError extends Error {
  constructor(ms: number) {
    super(`heard nothing from the server for ${ms} ms; taking the connection for dead`);
    this.name = "SessionSilentError";
  }
}

type Operation =
  | {
    readonly kind: "lease_update";
    readonly taskToken: string;
    readonly queue: string;
    readonly visibilityTimeoutSeconds: number;
  }
  | { readonly kind: "events"; readonly taskToken: string; readonly events: readonly JobEvent[] }
  | { readonly kind: "completion"; readonly taskToken: string; readonly result: JobResult };

interface PendingOperation {
  readonly opId: bigint;
  readonly operation: Operation;
  /** The trace context of the call that issued it ("" when not tracing). */
  readonly traceparent: string;
  readonly resolve: (cancelled: boolean) => void;
  readonly reject: (error: unknown) => void;
  /** Resolves once the operation is settled either way. */
  readonly settled: Promise<void>;
}

interface OpenStream {
  readonly requests: RequestChannel;
}

/** Creates the session WorkerApi; the stream opens at the first claim. */
export function createSessionWorkerApi(options: SessionWorkerApiOptions): ClosableWorkerApi {
  return new SessionWorkerApi(options);
}

class SessionWorkerApi implements ClosableWorkerApi {
  readonly #options: SessionWorkerApiOptions;
  readonly #logger: Logger;
  readonly #closing = new AbortController();
  #mode: "session" | "unary" | "connecting" = "connecting";
  #queue = "";
  #visibilityTimeoutSeconds = 0;
  #loop: Promise<void> | undefined;
  #stream: OpenStream | undefined;
  #nextOpId = 1n;
  /** Operations not yet acknowledged, in the order they were issued. */
  readonly #pending = new Map<bigint, PendingOperation>();
  /** Issued since the last flush, for the current stream. */
  #unsent: PendingOperation[] = [];
  #unsentCredits = 0;
  #flushScheduled = false;
  /** Jobs pushed by the server and not claimed yet. */
  #received: LeasedJob[] = [];
  /** Credits granted on the current stream that no job has used yet. */
  #outstanding = 0;
  /** What the waiting claim asked for (0 when no claim waits). */
  #wanted = 0;
  #claimSignal: AbortSignal | undefined;
  #wakeClaim: (() => void) | undefined;
  readonly #completedTokens = new Set<string>();
  /** close() has begun: no reconnecting. */
  #stopping = false;
  readonly #wakeOnAbort = () => this.#wakeClaim?.();

  constructor(options: SessionWorkerApiOptions) {
    this.#options = options;
    this.#logger = options.logger;
  }

  get protocol(): "session" | "unary" | "connecting" {
    return this.#mode;
  }

  async claim(queue: string, options: ClaimOptions): Promise<LeasedJob[]> {
    if (this.#mode === "unary") return this.#options.unary.claim(queue, options);
    this.#claimSignal = options.signal;
    if (this.#loop === undefined) {
      this.#queue = queue;
      this.#visibilityTimeoutSeconds = options.visibilityTimeoutSeconds;
      this.#loop = this.#connectLoop();
    }
    const { signal, maxJobs } = options;
    while (this.#received.length === 0 && !signal.aborted && !this.#isUnary()) {
      this.#wanted = maxJobs;
      this.#grantUpTo(maxJobs);
      await new Promise<void>((resolve) => {
        this.#wakeClaim = resolve;
        signal.addEventListener("abort", this.#wakeOnAbort, { once: true });
      });
      signal.removeEventListener("abort", this.#wakeOnAbort);
      this.#wakeClaim = undefined;
    }
    this.#wanted = 0;
    if (this.#received.length === 0 && this.#isUnary() && !signal.aborted) {
      return this.#options.unary.claim(queue, options);
    }
    return this.#received.splice(0, maxJobs);
  }

  async extendLease(
    taskToken: string,
    queue: string,
    visibilityTimeoutSeconds: number,
  ): Promise<LeaseUpdate> {
    const cancelled = await this.#issue({
      kind: "lease_update",
      taskToken,
      queue,
      visibilityTimeoutSeconds,
    });
    return { cancelled };
  }

  async publishEvents(taskToken: string, events: readonly JobEvent[]): Promise<void> {
    await this.#issue({ kind: "events", taskToken, events });
  }

  async complete(taskToken: string, result: JobResult): Promise<void> {
    // The slot this job frees takes the next job: grant its credit in the
    // same message, unless the worker is stopping.
    if (
      this.#mode === "session" && this.#claimSignal?.aborted === false &&
      this.#firstCompletion(taskToken)
    ) {
      this.#grant(1);
    }
    await this.#issue({ kind: "completion", taskToken, result });
  }

  async close(): Promise<void> {
    if (this.#stopping) return;
    // Each step waits at most CLOSE_WAIT_MS: a server that is gone must not
    // hold the worker's exit.
    const within = (work: Promise<unknown>) =>
      Promise.race([work, this.#options.clock.sleep(CLOSE_WAIT_MS)]);
    await within(Promise.all([...this.#pending.values()].map((op) => op.settled)));
    // End the request side first, so the server ends the stream cleanly;
    // abort only if it does not within the wait.
    this.#stopping = true;
    this.#stream?.requests.close();
    await within(this.#loop ?? Promise.resolve());
    this.#closing.abort();
    await this.#loop;
    // Jobs pushed but never claimed (the worker stopped claiming, or they
    // came against credits granted before) go straight back; if that fails
    // too, their visibility timeout returns them.
    const unclaimed = this.#received.splice(0);
    await within(
      Promise.allSettled(
        unclaimed.map(({ job, taskToken }) =>
          this.#options.unary.extendLease(taskToken, job.queue, 0)
        ),
      ),
    );
    for (const op of this.#pending.values()) {
      op.reject(new ConnectError("the worker session closed", Code.Unavailable));
    }
    this.#pending.clear();
  }

  /**
   * Whether this is the first completion of the job the token leases (a
   * retried completion must not grant another credit). Remembers the last
   * {@link MAX_REMEMBERED_COMPLETIONS} tokens.
   */
  #firstCompletion(taskToken: string): boolean {
    if (this.#completedTokens.has(taskToken)) return false;
    this.#completedTokens.add(taskToken);
    if (this.#completedTokens.size > MAX_REMEMBERED_COMPLETIONS) {
      const oldest = this.#completedTokens.values().next().value;
      if (oldest !== undefined) this.#completedTokens.delete(oldest);
    }
    return true;
  }

  /** Read through a method: the mode changes while a claim waits. */
  #isUnary(): boolean {
    return this.#mode === "unary";
  }

  #issue(operation: Operation): Promise<boolean> {
    if (this.#mode === "unary") return this.#viaUnary(operation);
    if (this.#closing.signal.aborted) {
      return Promise.reject(new ConnectError("the worker session closed", Code.Unavailable));
    }
    const { promise, resolve, reject } = Promise.withResolvers<boolean>();
    const settled = promise.then(() => {}, () => {});
    const op: PendingOperation = {
      opId: this.#nextOpId++,
      operation,
      traceparent: currentTraceparent() ?? "",
      resolve,
      reject,
      settled,
    };
    this.#pending.set(op.opId, op);
    // Without a stream it waits in #pending and goes out when one opens.
    if (this.#stream !== undefined) {
      this.#unsent.push(op);
      this.#scheduleFlush();
    }
    return promise;
  }

  /** Grants credits until the server may push `wanted` more jobs than are already on their way. */
  #grantUpTo(wanted: number): void {
    const missing = wanted - this.#outstanding - this.#received.length;
    if (missing > 0 && this.#stream !== undefined) this.#grant(missing);
  }

  #grant(credits: number): void {
    if (this.#stream === undefined) return;
    this.#outstanding += credits;
    this.#unsentCredits += credits;
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      const stream = this.#stream;
      if (stream === undefined) return;
      const ops = this.#unsent;
      const credits = this.#unsentCredits;
      this.#unsent = [];
      this.#unsentCredits = 0;
      for (const message of messagesFor(ops, credits)) stream.requests.push(message);
    });
  }

  /** Keeps a stream open until close, reconnecting with backoff; may switch to unary. */
  async #connectLoop(): Promise<void> {
    let failures = 0;
    while (!this.#closing.signal.aborted && !this.#stopping) {
      const { opened, error } = await this.#runStream();
      if (this.#closing.signal.aborted || this.#stopping) return;
      if (opened) failures = 0;
      // Only the first stream decides: a session that worked once is
      // worth reconnecting to.
      if (
        !opened && this.#mode === "connecting" && this.#options.mode === "auto" &&
        cannotHoldSession(error)
      ) {
        this.#logger.warn(
          { err: error },
          "the server cannot hold a worker session (no full-duplex HTTP/2); using unary calls",
        );
        this.#switchToUnary();
        return;
      }
      const retryInMs = backoffDelayMs(failures++);
      this.#logger.warn({ err: error, retryInMs }, "worker session ended; reconnecting");
      await this.#options.clock.sleep(retryInMs, this.#closing.signal);
    }
  }

  /** Runs one stream to its end; says whether it opened and why it ended. */
  async #runStream(): Promise<{ opened: boolean; error: unknown }> {
    // Each stream on a connection of its own: after a connection went
    // silent, HTTP/2 would otherwise open the next stream on that same one.
    const connection = createClosableTransport({
      ...this.#options.connection,
      http2Only: true,
    });
    const client = createClient(JobService, connection.transport);
    const requests = new RequestChannel();
    const abort = new AbortController();
    const onClose = () => abort.abort();
    this.#closing.signal.addEventListener("abort", onClose, { once: true });
    const openTimeoutMs = this.#options.openTimeoutMs ?? 10_000;
    const openTimer = setTimeout(
      () => abort.abort(new SessionOpenTimeoutError(openTimeoutMs)),
      openTimeoutMs,
    );
    // A new stream starts with no credits on the server: grant what the
    // waiting claim wants, and resend everything not yet acknowledged.
    this.#stream = { requests };
    this.#unsent = [];
    this.#unsentCredits = 0;
    const credits = Math.max(0, this.#wanted - this.#received.length);
    this.#outstanding = credits;
    const messages = messagesFor([...this.#pending.values()], credits);
    const heartbeatMs = this.#options.heartbeatMs ?? SESSION_HEARTBEAT_MS;
    messages[0]!.open = create(SessionOpenSchema, {
      queue: this.#queue,
      visibilityTimeoutSeconds: this.#visibilityTimeoutSeconds,
      heartbeatMs,
    });
    for (const message of messages) requests.push(message);
    let opened = false;
    // A connection that died without a word (no FIN, no RST) would leave an
    // idle worker waiting forever: heartbeats both ways bound the silence.
    // The limit comes from the interval the server announced in its first
    // message (none from a server that sends no heartbeats).
    let silenceLimitMs = 0;
    let heardAt = performance.now();
    const heartbeat = setInterval(() => {
      if (!opened) return;
      if (silenceLimitMs > 0 && performance.now() - heardAt > silenceLimitMs) {
        abort.abort(new SessionSilentError(silenceLimitMs));
      } else if (requests.quietSinceLastAsked()) {
        requests.pushHeartbeat();
      }
    }, heartbeatMs);
    try {
      const responses = client.workerSession(requests, { signal: abort.signal });
      for await (const res of responses) {
        heardAt = performance.now();
        if (!opened) {
          opened = true;
          silenceLimitMs = SESSION_SILENT_HEARTBEATS * res.heartbeatMs;
          clearTimeout(openTimer);
          if (this.#mode !== "session") {
            this.#mode = "session";
            this.#logger.info({ queue: this.#queue }, "worker session open");
          }
        }
        this.#receive(res);
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
      this.#closing.signal.removeEventListener("abort", onClose);
      this.#stream = undefined;
      requests.close();
    }
  }

  #receive(res: WorkerSessionResponse): void {
    if (res.jobs.length > 0) {
      for (const pushed of res.jobs) {
        if (pushed.job !== undefined) {
          this.#received.push({ job: pushed.job, taskToken: pushed.taskToken });
        }
      }
      this.#outstanding = Math.max(0, this.#outstanding - res.jobs.length);
      this.#wakeClaim?.();
    }
    for (const ack of res.acks) {
      const op = this.#pending.get(ack.opId);
      if (op === undefined) continue; // the ack of a resend that was settled already
      this.#pending.delete(ack.opId);
      if (ack.error === undefined) op.resolve(ack.cancelled);
      else op.reject(new ConnectError(ack.error.message, ack.error.code as Code));
    }
  }

  #switchToUnary(): void {
    this.#mode = "unary";
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const op of pending) this.#viaUnary(op.operation).then(op.resolve, op.reject);
    this.#wakeClaim?.();
  }

  async #viaUnary(operation: Operation): Promise<boolean> {
    const unary = this.#options.unary;
    switch (operation.kind) {
      case "lease_update": {
        const update = await unary.extendLease(
          operation.taskToken,
          operation.queue,
          operation.visibilityTimeoutSeconds,
        );
        return update.cancelled;
      }
      case "events":
        await unary.publishEvents(operation.taskToken, operation.events);
        return false;
      case "completion":
        await unary.complete(operation.taskToken, operation.result);
        return false;
    }
  }
}

/** Splits operations (and credits, on the first) into messages of bounded size. */
function messagesFor(
  ops: readonly PendingOperation[],
  credits: number,
): WorkerSessionRequest[] {
  const messages: WorkerSessionRequest[] = [];
  let current = create(WorkerSessionRequestSchema, { credits });
  let count = 0;
  let bytes = 0;
  for (const { opId, operation, traceparent } of ops) {
    const size = estimateBytes(operation, traceparent);
    if (count > 0 && (count >= MAX_OPS_PER_MESSAGE || bytes + size > SMALL_MESSAGE_BYTES)) {
      messages.push(current);
      current = create(WorkerSessionRequestSchema);
      count = 0;
      bytes = 0;
    }
    count++;
    bytes += size;
    switch (operation.kind) {
      case "lease_update":
        current.leaseUpdates.push(create(SessionLeaseUpdateSchema, {
          opId,
          traceparent,
          taskToken: operation.taskToken,
          visibilityTimeoutSeconds: operation.visibilityTimeoutSeconds,
        }));
        break;
      case "events":
        current.events.push(create(SessionEventsSchema, {
          opId,
          traceparent,
          taskToken: operation.taskToken,
          events: [...operation.events],
        }));
        break;
      case "completion":
        current.completions.push(create(SessionCompletionSchema, {
          opId,
          traceparent,
          taskToken: operation.taskToken,
          jobResult: operation.result,
        }));
        break;
    }
  }
  if (count > 0 || credits > 0 || messages.length === 0) messages.push(current);
  return messages;
}

/** A cheap, slightly high estimate of an operation's encoded size (output bytes dominate). */
function estimateBytes(operation: Operation, traceparent: string): number {
  let bytes = 24 + operation.taskToken.length + traceparent.length;
  switch (operation.kind) {
    case "completion":
      return bytes + 64 + operation.result.errorMessage.length;
    case "lease_update":
      return bytes;
    case "events":
      for (const event of operation.events) {
        bytes += 48;
        if (event.eventData.case === "outputBatch") {
          for (const item of event.eventData.value.outputs) bytes += item.output.byteLength + 8;
        } else if (event.eventData.case === "output") {
          bytes += event.eventData.value.output.byteLength;
        }
      }
      return bytes;
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

/** The request side of one stream: messages pushed by the worker, read by the transport. */
class RequestChannel implements AsyncIterable<WorkerSessionRequest> {
  #queue: WorkerSessionRequest[] = [];
  #closed = false;
  #wake: (() => void) | undefined;
  #pushedSinceAsked = false;

  push(message: WorkerSessionRequest): void {
    this.#pushedSinceAsked = true;
    this.#enqueue(message);
  }

  /** Sends an empty message; it does not count as having said something. */
  pushHeartbeat(): void {
    this.#enqueue(create(WorkerSessionRequestSchema, {}));
  }

  #enqueue(message: WorkerSessionRequest): void {
    if (this.#closed) return;
    this.#queue.push(message);
    this.#wake?.();
  }

  /** Whether nothing but heartbeats was pushed since the last call. */
  quietSinceLastAsked(): boolean {
    const quiet = !this.#pushedSinceAsked;
    this.#pushedSinceAsked = false;
    return quiet;
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<WorkerSessionRequest> {
    for (;;) {
      if (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        yield* batch;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}
