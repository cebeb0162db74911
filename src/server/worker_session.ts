/**
 * The server side of WorkerSession: one bidirectional stream per worker
 * process. The worker grants credits; a pusher leases jobs from the store
 * while credits remain, from the session's queues in the order the worker
 * gave them (queue_order_lease.ts), and sends them; the worker's operations
 * (lease updates, event batches, completions) are applied in the order they arrive
 * and acknowledged by op_id. Jobs and acks that are ready together go out as
 * one message, so under load one write carries many of them.
 *
 * A session never decides anything the unary RPCs would not: every
 * operation goes through the same validation and the same store call, so
 * fencing and idempotency are the store's, and an operation resent after a
 * broken stream is as harmless as a retried unary call.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  type DequeueJobResponse,
  DequeueJobResponseSchema,
  type SessionAck,
  SessionAckSchema,
  type WorkerSessionRequest,
  type WorkerSessionResponse,
  WorkerSessionResponseSchema,
} from "../../gen/job/v1/job_pb.ts";
import { nextMacrotask } from "../event_loop.ts";
import type { Logger } from "../logger.ts";
import type { Span } from "@opentelemetry/api";
import { endSpan, startRemoteChildSpan } from "../telemetry/tracing.ts";
import type { BatchOutcome, CompletionInput, JobStore, LeasedJob } from "../store/job_store.ts";
import { operationError } from "./error_mapping.ts";
import { SessionWatchdog } from "../protocol/session.ts";
import {
  InvalidArgumentError,
  validateCompleteRequest,
  validatePublishMessage,
  validateUpdateRequest,
} from "../protocol/request_validation.ts";
import {
  validateSessionCredits,
  validateSessionOpen,
  validateSessionOperationCount,
} from "../protocol/session_validation.ts";
import { handBackLeasedJobs } from "./hand_back.ts";
import { leaseInQueueOrder } from "./queue_order_lease.ts";
import { LeaseLostError, QueueMismatchError } from "../store/errors.ts";

/** What a session needs. */
export interface WorkerSessionDeps {
  readonly store: JobStore;
  readonly logger: Logger;
  /**
   * How often an idle session sends an empty message (SESSION_HEARTBEAT_MS);
   * a worker silent for SESSION_SILENT_HEARTBEATS of them is taken for gone.
   */
  readonly heartbeatMs: number;
}

/**
 * Most jobs leased in one store call. Larger than DequeueJob's 10 (one SQS
 * receive): the embedded stores lease a hundred in one transaction, and the
 * AWS store takes at most 10 per receive whatever it is asked.
 */
const MAX_JOBS_PER_PUSH = 100;

/**
 * Messages read ahead of the one being applied; beyond this the session
 * stops reading, and HTTP/2 flow control slows the worker down.
 */
const MAX_QUEUED_MESSAGES = 32;

/** Serves one WorkerSession stream until the worker closes it or the call ends. */
export async function* serveWorkerSession(
  requests: AsyncIterable<WorkerSessionRequest>,
  ctx: HandlerContext,
  deps: WorkerSessionDeps,
): AsyncGenerator<WorkerSessionResponse> {
  const session = new ServerSession(deps, ctx.signal);
  const reading = session.read(requests);
  try {
    yield* session.responses();
    // A call that ended (the client left, or the server is shutting down)
    // may never see its request stream end; do not wait for it.
    if (!ctx.signal.aborted) await reading;
  } finally {
    await session.end();
  }
}

class ServerSession {
  readonly #store: JobStore;
  readonly #logger: Logger;
  /** Stops the pusher (the worker closed its side, or the call ended). */
  readonly #stop = new AbortController();
  readonly #callSignal: AbortSignal;
  /** The queues served, in the worker's order of preference. */
  #queues: readonly string[] = [];
  /**
   * The queue of each job this session pushed and has not seen end, by task
   * token, so its lease updates name it (sessions of several queues only).
   */
  readonly #queueOfToken = new Map<string, string>();
  #visibilityTimeoutMs = 0;
  #workerName = "";
  #credits = 0;
  #jobs: LeasedJob[] = [];
  #acks: SessionAck[] = [];
  /** Set when the request stream has ended and every operation is applied. */
  #readDone = false;
  #pushing: Promise<void> = Promise.resolve();
  #failure: unknown = undefined;
  /** Wakes the response loop (something to send, or the end). */
  #wakeResponses: (() => void) | undefined;
  /** Wakes the pusher (credits arrived, or the end). */
  #wakePusher: (() => void) | undefined;
  /** What was heard from the worker and sent to it, for the heartbeat timer. */
  readonly #watchdog = new SessionWatchdog(performance.now());
  /** Set by the heartbeat timer when a whole interval passed in silence. */
  #heartbeatDue = false;
  /** Set while the reader waits for applies to catch up: the worker is not silent, we are not reading. */
  #readingHeldBack = false;
  readonly #heartbeatMs: number;

  constructor(deps: WorkerSessionDeps, callSignal: AbortSignal) {
    this.#store = deps.store;
    this.#logger = deps.logger;
    this.#heartbeatMs = deps.heartbeatMs;
    this.#callSignal = callSignal;
    const onAbort = () => this.#stop.abort();
    if (callSignal.aborted) onAbort();
    callSignal.addEventListener("abort", onAbort, { once: true });
    this.#stop.signal.addEventListener("abort", () => {
      this.#wakePusher?.();
      this.#wakeResponses?.();
    }, { once: true });
  }

  /** Reads and applies the worker's messages; a malformed one fails the whole session. */
  async read(requests: AsyncIterable<WorkerSessionRequest>): Promise<void> {
    let applying: Promise<void> = Promise.resolve();
    // Messages waiting to be applied; one apply takes all that arrived
    // meanwhile, so a burst of small messages costs one store transaction.
    let inbox: WorkerSessionRequest[] = [];
    try {
      let first = true;
      for await (const req of requests) {
        this.#watchdog.heard(performance.now());
        if (first) {
          const open = validateSessionOpen(req.open);
          this.#queues = open.queues;
          this.#visibilityTimeoutMs = open.visibilityTimeoutMs;
          this.#workerName = open.workerName;
          this.#watchdog.expectHeartbeatsEvery(open.workerHeartbeatMs);
          this.#pushing = this.#push();
          first = false;
          this.#logger.debug({ queues: this.#queues }, "worker session opened");
        } else if (req.open !== undefined) {
          throw new InvalidArgumentError("open", "may only be sent in the first message");
        }
        this.#grant(req.credits);
        validateSessionOperationCount(req);
        inbox.push(req);
        if (inbox.length === 1) {
          applying = applying.then(async () => {
            await nextMacrotask();
            const batch = inbox;
            inbox = [];
            await this.#apply(batch);
          }).catch((error) => {
            // #apply acks what fails; anything else ends the session (and
            // must never become an unhandled rejection).
            this.#failure ??= error;
            this.#stop.abort();
          });
        }
        if (inbox.length >= MAX_QUEUED_MESSAGES) {
          this.#readingHeldBack = true;
          await applying;
          this.#readingHeldBack = false;
          this.#watchdog.heard(performance.now());
        }
        if (this.#stop.signal.aborted) break;
      }
      if (first) throw new InvalidArgumentError("open", "is required: the stream ended without it");
      await applying;
    } catch (error) {
      this.#failure ??= error;
      await applying.catch(() => {});
    } finally {
      this.#readDone = true;
      // The worker closed its side: it takes no more jobs.
      this.#stop.abort();
      this.#wakeResponses?.();
    }
  }

  /** Yields what is ready to send, until reading is done and everything is sent. */
  async *responses(): AsyncGenerator<WorkerSessionResponse> {
    // The first message tells the worker the stream is open both ways (a
    // proxy that cannot do full duplex never lets it through), and how
    // often it will hear from the server.
    yield create(WorkerSessionResponseSchema, { heartbeatMs: this.#heartbeatMs });
    // One timer for the session's life, not one per wait: under load this
    // loop waits thousands of times a second.
    const heartbeat = setInterval(() => {
      switch (this.#watchdog.tick(performance.now(), !this.#readingHeldBack)) {
        case "silent":
          this.#giveUp(this.#watchdog.silenceLimitMs);
          break;
        case "heartbeat":
          this.#heartbeatDue = true;
          this.#wakeResponses?.();
          break;
        case "none":
          break;
      }
    }, this.#heartbeatMs);
    try {
      yield* this.#send();
    } finally {
      clearInterval(heartbeat);
    }
  }

  async *#send(): AsyncGenerator<WorkerSessionResponse> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure;
      // Once the session stops, jobs not yet sent stay for end() to hand
      // back; only acks still go out.
      const jobs = this.#stop.signal.aborted ? [] : this.#jobs;
      if (jobs.length > 0 || this.#acks.length > 0) {
        const message = create(WorkerSessionResponseSchema, {
          jobs: jobs.map(toPushedJob),
          acks: this.#acks,
        });
        if (jobs.length > 0) this.#jobs = [];
        this.#acks = [];
        this.#watchdog.sent();
        this.#heartbeatDue = false;
        yield message;
        continue;
      }
      if (this.#heartbeatDue && !this.#readDone && !this.#callSignal.aborted) {
        this.#heartbeatDue = false;
        yield create(WorkerSessionResponseSchema, {});
        continue;
      }
      // Nobody reads what a call that ended would send.
      if (this.#readDone || this.#callSignal.aborted) return;
      await new Promise<void>((resolve) => {
        this.#wakeResponses = resolve;
      });
      this.#wakeResponses = undefined;
    }
  }

  /** Stops pushing and hands back jobs that were leased for the worker but never sent. */
  async end(): Promise<void> {
    this.#stop.abort();
    await this.#pushing;
    await this.#handBackUnsent();
  }

  /**
   * The connection died without a word: stop leasing for it and hand back
   * what was never sent now, since the response may be stuck behind HTTP/2
   * flow control on a connection nobody reads, and end() would never run.
   */
  #giveUp(silenceLimitMs: number): void {
    this.#failure ??= new ConnectError(
      `the worker sent nothing for ${silenceLimitMs} ms; ending its session`,
      Code.DeadlineExceeded,
    );
    this.#stop.abort();
    // Woken even if the session had stopped already: it ends with the failure.
    this.#wakeResponses?.();
    void this.#pushing.then(() => this.#handBackUnsent());
  }

  /** Puts jobs leased for the worker but never sent back in the queue. */
  async #handBackUnsent(): Promise<void> {
    const unsent = this.#jobs;
    this.#jobs = [];
    await handBackLeasedJobs(
      this.#store,
      this.#logger,
      unsent,
      "could not hand back an unsent job",
    );
  }

  #grant(credits: number): void {
    if (credits === 0) return;
    validateSessionCredits(credits, this.#credits + this.#jobs.length);
    this.#credits += credits;
    this.#wakePusher?.();
  }

  /** Leases jobs while credits remain; each leased job takes one. */
  async #push(): Promise<void> {
    const signal = this.#stop.signal;
    try {
      while (!signal.aborted) {
        if (this.#credits <= 0) {
          await new Promise<void>((resolve) => {
            this.#wakePusher = resolve;
          });
          this.#wakePusher = undefined;
          // Let the messages that arrived together add their credits, so
          // one store call leases for all of them.
          await nextMacrotask();
          continue;
        }
        const leased = await leaseInQueueOrder(this.#store, this.#queues, this.#logger, {
          maxJobs: Math.min(this.#credits, MAX_JOBS_PER_PUSH),
          visibilityTimeoutMs: this.#visibilityTimeoutMs,
          workerName: this.#workerName,
          signal,
        });
        if (this.#queues.length > 1) {
          for (const { job, taskToken } of leased) this.#queueOfToken.set(taskToken, job.queue);
        }
        this.#credits -= leased.length;
        this.#jobs.push(...leased);
        this.#wakeResponses?.();
      }
    } catch (error) {
      if (!signal.aborted) {
        this.#failure ??= error;
        this.#stop.abort();
      }
    }
  }

  /**
   * Applies messages in arrival order by kind: event batches first, then
   * lease updates, then completions (each one's own events, then all the
   * results in one store batch), so a job's last events are stored before
   * its completion. A worker sends nothing for a
   * job after its completion or hand-back, so grouping by kind keeps every
   * job's own order.
   */
  async #apply(messages: readonly WorkerSessionRequest[]): Promise<void> {
    for (const op of messages.flatMap((m) => m.events)) {
      await this.#settle(op, "publish_events", async () => {
        validatePublishMessage(op.taskToken, op.events.length);
        await this.#store.publishEvents(op.taskToken, op.events);
      });
    }
    for (const op of messages.flatMap((m) => m.leaseUpdates)) {
      await this.#settle(op, "update_lease", async () => {
        const { taskToken, visibilityTimeoutMs } = validateUpdateRequest({
          ...op,
          queue: this.#queueOf(op.taskToken),
        });
        const { cancelled } = await this.#updateLease(taskToken, visibilityTimeoutMs);
        if (visibilityTimeoutMs === 0) this.#queueOfToken.delete(taskToken);
        return cancelled;
      });
    }
    const valid: { opId: bigint; input: CompletionInput; span: Span | undefined }[] = [];
    for (const op of messages.flatMap((m) => m.completions)) {
      this.#queueOfToken.delete(op.taskToken);
      const span = operationSpan(op, "complete");
      let input: CompletionInput;
      try {
        input = validateCompleteRequest(op);
      } catch (error) {
        endSpan(span, error);
        this.#ack(op.opId, error);
        continue;
      }
      // The attempt's last events go in before its result, and a result
      // whose events were refused is not recorded: the worker decides what
      // the job's end says then (as it does for a refused SessionEvents).
      if (op.events.length > 0) {
        try {
          validatePublishMessage(op.taskToken, op.events.length);
          await this.#store.publishEvents(op.taskToken, op.events);
        } catch (error) {
          // A lease that is gone is the result's to judge: a resend of the
          // completion that finished the job (its ack was lost with a
          // stream) is accepted, its events stored the first time; any
          // other completion is refused as lease lost.
          if (!(error instanceof LeaseLostError)) {
            endSpan(span, error);
            this.#ack(op.opId, error, { eventsRefused: true });
            continue;
          }
        }
      }
      valid.push({ opId: op.opId, input, span });
    }
    if (valid.length > 0) {
      let outcomes: BatchOutcome<boolean>[];
      try {
        outcomes = await this.#store.completeBatch(valid.map((v) => v.input));
      } catch (error) {
        // The whole batch failed (the store is closing, the disk is full):
        // each completion gets that error, as its unary call would.
        outcomes = valid.map(() => ({ ok: false, error }));
      }
      outcomes.forEach((outcome, i) => {
        const error = outcome.ok ? undefined : outcome.error;
        endSpan(valid[i]!.span, error);
        this.#ack(valid[i]!.opId, error);
      });
    }
  }

  /**
   * The queue a lease update names: the job's, when this session pushed it;
   * else (a job pushed on an earlier session of the worker) the first queue.
   */
  #queueOf(taskToken: string): string {
    return this.#queueOfToken.get(taskToken) ?? this.#queues[0]!;
  }

  /**
   * The store's updateLease on the job's queue. A job this session did not
   * push may be of any of its queues: a mismatch that names another of them
   * is tried again on that one (the store checks the token, which is signed
   * with the job's queue, before the queue).
   */
  async #updateLease(taskToken: string, visibilityTimeoutMs: number) {
    const queue = this.#queueOf(taskToken);
    try {
      return await this.#store.updateLease(taskToken, queue, visibilityTimeoutMs);
    } catch (error) {
      if (!(error instanceof QueueMismatchError) || !this.#queues.includes(error.expected)) {
        throw error;
      }
      this.#queueOfToken.set(taskToken, error.expected);
      return await this.#store.updateLease(taskToken, error.expected, visibilityTimeoutMs);
    }
  }

  async #settle(
    op: { opId: bigint; traceparent: string },
    name: string,
    work: () => Promise<boolean | void>,
  ): Promise<void> {
    const span = operationSpan(op, name);
    try {
      const cancelled = (await work()) === true;
      endSpan(span);
      this.#ack(op.opId, undefined, { cancelled });
    } catch (error) {
      endSpan(span, error);
      this.#ack(op.opId, error);
    }
  }

  #ack(
    opId: bigint,
    error: unknown,
    flags: { readonly cancelled?: boolean; readonly eventsRefused?: boolean } = {},
  ): void {
    this.#acks.push(
      create(SessionAckSchema, {
        opId,
        cancelled: flags.cancelled === true,
        eventsRefused: flags.eventsRefused === true,
        ...(error === undefined ? {} : { error: operationError(error, this.#logger) }),
      }),
    );
    this.#wakeResponses?.();
  }
}

/** A span for one operation, in the trace of the worker's call that issued it. */
function operationSpan(op: { traceparent: string }, name: string): Span | undefined {
  return startRemoteChildSpan(`${SESSION_SPAN_PREFIX}${name}`, op.traceparent, {
    "rpc.system": "connect_rpc",
    "rpc.service": "job.v1.JobService",
    "rpc.method": "WorkerSession",
  });
}

/** Session operations' spans are named this plus the operation (e.g. `complete`). */
export const SESSION_SPAN_PREFIX = "job.v1.JobService/WorkerSession ";

function toPushedJob({ job, taskToken }: LeasedJob): DequeueJobResponse {
  return create(DequeueJobResponseSchema, { job, taskToken });
}
