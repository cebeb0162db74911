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
import { Code, ConnectError } from "@connectrpc/connect";
import type { JobEvent, WorkerSessionResponse } from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import type { ConnectionOptions } from "../protocol/transport.ts";
import type { Logger } from "../logger.ts";
import type { LeasedJob, LeaseUpdate } from "../protocol/job_requests.ts";
import { currentTraceparent } from "../telemetry/tracing.ts";
import { SESSION_HEARTBEAT_MS } from "../protocol/session.ts";
import { type ClaimOptions, claimQueues, type Completion, type WorkerApi } from "./worker_api.ts";
import { CompletionMemory, type Operation, OperationLedger } from "./session/session_ledger.ts";
import { SessionCredits } from "./session/session_credits.ts";
import { messagesFor, SessionOutbox } from "./session/session_framing.ts";
import {
  cannotHoldSession,
  keepSessionConnected,
  runSessionStream,
  type StreamEnd,
} from "./session/session_connection.ts";

export { cannotHoldSession };

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
   * message. (A stream is taken for dead after SESSION_SILENT_HEARTBEATS
   * of the interval the server announces: see protocol/session.ts.)
   */
  readonly heartbeatMs?: number;
  /** Recorded by the server in the attempts this worker runs (default: none). */
  readonly workerName?: string;
}

/** A WorkerApi that also has a connection to end. */
export interface ClosableWorkerApi extends WorkerApi {
  /** Which protocol carries the calls now. */
  readonly protocol: "session" | "unary" | "connecting";
  /** Waits for pending operations, ends the stream, and hands back jobs pushed but not claimed. */
  close(): Promise<void>;
}

/** Longest close waits for pending operations before it ends the stream anyway. */
const CLOSE_WAIT_MS = 10_000;

/** Creates the session WorkerApi; the stream opens at the first claim. */
export function createSessionWorkerApi(options: SessionWorkerApiOptions): ClosableWorkerApi {
  return new SessionWorkerApi(options);
}

class SessionWorkerApi implements ClosableWorkerApi {
  readonly #options: SessionWorkerApiOptions;
  readonly #logger: Logger;
  readonly #closing = new AbortController();
  #mode: "session" | "unary" | "connecting" = "connecting";
  /** The queues the session serves, in order of preference (set by the first claim). */
  #queues: readonly string[] = [];
  #visibilityTimeoutSeconds = 0;
  #loop: Promise<void> | undefined;
  readonly #ledger = new OperationLedger();
  /** Issued since the last flush, for the current stream (its channel says whether one runs). */
  readonly #outbox = new SessionOutbox();
  readonly #credits = new SessionCredits();
  #claimSignal: AbortSignal | undefined;
  #wakeClaim: (() => void) | undefined;
  readonly #completions = new CompletionMemory();
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
      this.#queues = claimQueues(queue, options);
      this.#visibilityTimeoutSeconds = options.visibilityTimeoutSeconds;
      this.#loop = this.#connectLoop();
    }
    const { signal, maxJobs } = options;
    while (this.#credits.received === 0 && !signal.aborted && !this.#isUnary()) {
      this.#credits.wanted = maxJobs;
      this.#grantUpTo(maxJobs);
      await new Promise<void>((resolve) => {
        this.#wakeClaim = resolve;
        signal.addEventListener("abort", this.#wakeOnAbort, { once: true });
      });
      signal.removeEventListener("abort", this.#wakeOnAbort);
      this.#wakeClaim = undefined;
    }
    this.#credits.wanted = 0;
    if (this.#credits.received === 0 && this.#isUnary() && !signal.aborted) {
      return this.#options.unary.claim(queue, options);
    }
    return this.#credits.take(maxJobs);
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

  async complete(taskToken: string, completion: Completion): Promise<void> {
    // The slot this job frees takes the next job: grant its credit in the
    // same message, unless the worker is stopping. (A retried completion
    // must not grant another credit.)
    if (
      this.#mode === "session" && this.#claimSignal?.aborted === false &&
      this.#completions.first(taskToken)
    ) {
      this.#grant(1);
    }
    await this.#issue({ kind: "completion", taskToken, completion });
  }

  async close(): Promise<void> {
    if (this.#stopping) return;
    // Each step waits at most CLOSE_WAIT_MS: a server that is gone must not
    // hold the worker's exit.
    const within = (work: Promise<unknown>) =>
      Promise.race([work, this.#options.clock.sleep(CLOSE_WAIT_MS)]);
    await within(this.#ledger.allSettled());
    // End the request side first, so the server ends the stream cleanly;
    // abort only if it does not within the wait.
    this.#stopping = true;
    this.#outbox.channel?.close();
    await within(this.#loop ?? Promise.resolve());
    this.#closing.abort();
    await this.#loop;
    // Jobs pushed but never claimed (the worker stopped claiming, or they
    // came against credits granted before) go straight back; if that fails
    // too, their visibility timeout returns them.
    const unclaimed = this.#credits.takeAll();
    await within(
      Promise.allSettled(
        unclaimed.map(({ job, taskToken }) =>
          this.#options.unary.extendLease(taskToken, job.queue, 0)
        ),
      ),
    );
    this.#ledger.rejectAll(new ConnectError("the worker session closed", Code.Unavailable));
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
    const { op, promise } = this.#ledger.add(operation, currentTraceparent() ?? "");
    // Without a stream it waits in the ledger and goes out when one opens.
    this.#outbox.add(op);
    return promise;
  }

  /** Grants credits until the server may push `wanted` more jobs than are already on their way. */
  #grantUpTo(wanted: number): void {
    const missing = this.#credits.missing(wanted);
    if (missing > 0 && this.#outbox.channel !== undefined) this.#grant(missing);
  }

  #grant(credits: number): void {
    if (this.#outbox.channel === undefined) return;
    this.#credits.granted(credits);
    this.#outbox.grant(credits);
  }

  #connectLoop(): Promise<void> {
    return keepSessionConnected({
      clock: this.#options.clock,
      logger: this.#logger,
      closing: this.#closing.signal,
      stopping: () => this.#stopping,
      runStream: () => this.#runStream(),
      mayFallBack: () => this.#mode === "connecting" && this.#options.mode === "auto",
      fallBack: () => this.#switchToUnary(),
    });
  }

  #runStream(): Promise<StreamEnd> {
    return runSessionStream({
      connection: this.#options.connection,
      closing: this.#closing.signal,
      openTimeoutMs: this.#options.openTimeoutMs ?? 10_000,
      heartbeatMs: this.#options.heartbeatMs ?? SESSION_HEARTBEAT_MS,
      queues: this.#queues,
      visibilityTimeoutSeconds: this.#visibilityTimeoutSeconds,
      workerName: this.#options.workerName ?? "",
      // A new stream starts with no credits on the server: grant what the
      // waiting claim wants, and resend everything not yet acknowledged.
      started: (requests) => {
        this.#outbox.attach(requests);
        return messagesFor(this.#ledger.pending(), this.#credits.startStream());
      },
      opened: () => {
        if (this.#mode !== "session") {
          this.#mode = "session";
          this.#logger.info({ queues: this.#queues }, "worker session open");
        }
      },
      received: (res) => this.#receive(res),
      ended: () => this.#outbox.detach(),
    });
  }

  #receive(res: WorkerSessionResponse): void {
    if (res.jobs.length > 0) {
      const jobs: LeasedJob[] = [];
      for (const pushed of res.jobs) {
        if (pushed.job !== undefined) jobs.push({ job: pushed.job, taskToken: pushed.taskToken });
      }
      this.#credits.pushed(jobs, res.jobs.length);
      this.#wakeClaim?.();
    }
    for (const ack of res.acks) this.#ledger.acknowledge(ack);
  }

  #switchToUnary(): void {
    this.#mode = "unary";
    for (const op of this.#ledger.takeAll()) {
      this.#viaUnary(op.operation).then(op.resolve, op.reject);
    }
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
        await unary.complete(operation.taskToken, operation.completion);
        return false;
    }
  }
}
