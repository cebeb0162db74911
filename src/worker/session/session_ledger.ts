/**
 * The worker's ledger of session operations: every lease update, event
 * batch and completion stays here, under its op_id, until the server's ack
 * settles it, so a broken stream resends exactly what was not acknowledged.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { JobEvent, SessionAck } from "../../../gen/job/v1/job_pb.ts";
import { type Completion, LastEventsRefusedError } from "../worker_api.ts";

/** One thing the worker asks of the server on a session. */
export type Operation =
  | {
    readonly kind: "lease_update";
    readonly taskToken: string;
    readonly queue: string;
    readonly visibilityTimeoutSeconds: number;
  }
  | { readonly kind: "events"; readonly taskToken: string; readonly events: readonly JobEvent[] }
  | {
    readonly kind: "completion";
    readonly taskToken: string;
    readonly completion: Completion;
  };

/** An operation issued and not yet acknowledged. */
export interface PendingOperation {
  readonly opId: bigint;
  readonly operation: Operation;
  /** The trace context of the call that issued it ("" when not tracing). */
  readonly traceparent: string;
  /** Settles it with the ack's `cancelled` (lease updates) or false. */
  readonly resolve: (cancelled: boolean) => void;
  readonly reject: (error: unknown) => void;
  /** Resolves once the operation is settled either way. */
  readonly settled: Promise<void>;
}

/** Operations not yet acknowledged, in the order they were issued. */
export class OperationLedger {
  #nextOpId = 1n;
  readonly #pending = new Map<bigint, PendingOperation>();

  /** Records a new operation; the promise settles with its ack. */
  add(operation: Operation, traceparent: string): {
    op: PendingOperation;
    promise: Promise<boolean>;
  } {
    const { promise, resolve, reject } = Promise.withResolvers<boolean>();
    const settled = promise.then(() => {}, () => {});
    const op: PendingOperation = {
      opId: this.#nextOpId++,
      operation,
      traceparent,
      resolve,
      reject,
      settled,
    };
    this.#pending.set(op.opId, op);
    return { op, promise };
  }

  /** Settles the operation `ack` answers (an ack of a resend settled already is ignored). */
  acknowledge(ack: SessionAck): void {
    const op = this.#pending.get(ack.opId);
    if (op === undefined) return;
    this.#pending.delete(ack.opId);
    if (ack.error === undefined) {
      op.resolve(ack.cancelled);
      return;
    }
    const error = new ConnectError(ack.error.message, ack.error.code as Code);
    op.reject(ack.eventsRefused ? new LastEventsRefusedError(error) : error);
  }

  /** Every pending operation, oldest first. */
  pending(): PendingOperation[] {
    return [...this.#pending.values()];
  }

  /** Removes and returns every pending operation, oldest first. */
  takeAll(): PendingOperation[] {
    const pending = this.pending();
    this.#pending.clear();
    return pending;
  }

  /** Resolves once every operation pending now is settled. */
  allSettled(): Promise<void> {
    return Promise.all(this.pending().map((op) => op.settled)).then(() => {});
  }

  /** Fails every pending operation with `error`. */
  rejectAll(error: unknown): void {
    for (const op of this.takeAll()) op.reject(error);
  }
}

/** Completions remembered so that a retried one grants no second credit. */
export const MAX_REMEMBERED_COMPLETIONS = 10_000;

/** The task tokens of the last {@link MAX_REMEMBERED_COMPLETIONS} completions issued. */
export class CompletionMemory {
  readonly #tokens = new Set<string>();

  /** Whether this is the first completion of the job `taskToken` leases; remembers it. */
  first(taskToken: string): boolean {
    if (this.#tokens.has(taskToken)) return false;
    this.#tokens.add(taskToken);
    if (this.#tokens.size > MAX_REMEMBERED_COMPLETIONS) {
      const oldest = this.#tokens.values().next().value;
      if (oldest !== undefined) this.#tokens.delete(oldest);
    }
    return true;
  }
}
