/**
 * The operations a worker performs on the queue, as plain functions, so the
 * worker loop and job execution are tested without a network (pass an
 * in-process implementation) and run for real over RPC
 * ({@link createRpcWorkerApi}).
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { JobEvent, JobResult } from "../../gen/job/v1/job_pb.ts";
import type { AirunnerClients } from "../protocol/transport.ts";
import type { LeasedJob, LeaseUpdate } from "../protocol/job_requests.ts";
import { isTransient, transientCodes } from "../retry.ts";

/** How to ask for jobs. */
export interface ClaimOptions {
  readonly maxJobs: number;
  readonly visibilityTimeoutSeconds: number;
  /** Ends the wait; the claim then resolves with no jobs. */
  readonly signal: AbortSignal;
  /**
   * Every queue to take jobs from, in order of preference, the claim's
   * `queue` first: when several have jobs, the earlier queue's go first.
   * Absent or empty: the claim's `queue` alone.
   */
  readonly queues?: readonly string[];
}

/** The queues a claim of `queue` with `options` serves, in order of preference. */
export function claimQueues(queue: string, options: Pick<ClaimOptions, "queues">): string[] {
  return options.queues === undefined || options.queues.length === 0
    ? [queue]
    : [...options.queues];
}

/** What a worker does to the queue. */
export interface WorkerApi {
  /**
   * Waits for and leases up to `maxJobs` jobs of `queue`, or of
   * `options.queues` in their order (none when the wait ends).
   */
  claim(queue: string, options: ClaimOptions): Promise<LeasedJob[]>;
  /**
   * Sets the lease to end `visibilityTimeoutSeconds` from now (0 hands the
   * job back); says whether the job was cancelled meanwhile.
   */
  extendLease(
    taskToken: string,
    queue: string,
    visibilityTimeoutSeconds: number,
  ): Promise<LeaseUpdate>;
  /** Stores events of the leased job. */
  publishEvents(taskToken: string, events: readonly JobEvent[]): Promise<void>;
  /**
   * Stores the attempt's last events, then records its result, as one
   * operation: the result is not recorded when the events are refused (the
   * call then fails with {@link LastEventsRefusedError}).
   */
  complete(taskToken: string, completion: Completion): Promise<void>;
  /** Ends the API's connection once the worker has stopped (nothing to end when absent). */
  close?(): Promise<void>;
}

/** What ends an attempt: its result, and the events not yet published (often only the process end). */
export interface Completion {
  readonly result: JobResult;
  readonly lastEvents: readonly JobEvent[];
}

/**
 * A completion's last events were refused, so its result was not recorded
 * either; `cause` is the refusal, to be judged as a refused publish is.
 */
export class LastEventsRefusedError extends Error {
  constructor(cause: unknown) {
    super(
      `the job's last events were refused: ${cause instanceof Error ? cause.message : cause}`,
      { cause },
    );
    this.name = "LastEventsRefusedError";
  }
}

/**
 * {@link WorkerApi.complete} over an API whose completion cannot carry
 * events: publishes them first, and records the result only if they were
 * stored.
 */
export async function completeAfterEvents(
  publishEvents: WorkerApi["publishEvents"],
  recordResult: (result: JobResult) => Promise<void>,
  taskToken: string,
  { result, lastEvents }: Completion,
): Promise<void> {
  if (lastEvents.length > 0) {
    try {
      await publishEvents(taskToken, lastEvents);
    } catch (error) {
      // A lost lease is the result's to judge, as on a session: a retry of
      // the completion that finished the job is accepted.
      if (!isLeaseLostError(error)) throw new LastEventsRefusedError(error);
    }
  }
  await recordResult(result);
}

/** Longest a single DequeueJob call may wait before the client gives up on it. */
const CLAIM_DEADLINE_MS = 90_000;
/**
 * How long a unary claim of several queues waits on each in turn, first to
 * last (DequeueJob takes one queue): a job waits up to this long for each
 * empty queue before its own, and an idle worker makes a call this often.
 * Far above a round trip, so a job leased at the end of a wait still
 * reaches the worker before its call's deadline.
 */
export const UNARY_QUEUE_WAIT_MS = 1_000;

/** The WorkerApi over Connect RPC. */
export function createRpcWorkerApi(clients: AirunnerClients, workerName = ""): WorkerApi {
  const publishEvents = async (taskToken: string, events: readonly JobEvent[]) => {
    await clients.events.publishJobEvents(
      (async function* () {
        yield { taskToken, events: [...events] };
      })(),
    );
  };
  const dequeue = async (
    queue: string,
    { maxJobs, visibilityTimeoutSeconds, signal }: ClaimOptions,
    timeoutMs: number,
  ): Promise<LeasedJob[]> => {
    const leased: LeasedJob[] = [];
    try {
      const stream = clients.jobs.dequeueJob(
        { queue, maxJobs, visibilityTimeoutSeconds, workerName },
        { signal, timeoutMs },
      );
      for await (const res of stream) {
        if (res.job !== undefined) leased.push({ job: res.job, taskToken: res.taskToken });
      }
    } catch (error) {
      const code = ConnectError.from(error).code;
      // Jobs already received are leased to this worker: run them rather
      // than leave them to wait out their visibility timeout.
      if (
        leased.length > 0 || code === Code.DeadlineExceeded ||
        (code === Code.Canceled && signal.aborted)
      ) {
        return leased;
      }
      throw error;
    }
    return leased;
  };
  return {
    async claim(queue, options) {
      const queues = claimQueues(queue, options);
      if (queues.length === 1) return await dequeue(queues[0]!, options, CLAIM_DEADLINE_MS);
      // In order, a short wait each; the next claim starts again at the first.
      for (const name of queues) {
        const leased = await dequeue(name, options, UNARY_QUEUE_WAIT_MS);
        if (leased.length > 0 || options.signal.aborted) return leased;
      }
      return [];
    },
    async extendLease(taskToken, queue, visibilityTimeoutSeconds) {
      const { cancelled } = await clients.jobs.updateJob({
        taskToken,
        queue,
        visibilityTimeoutSeconds,
      });
      return { cancelled };
    },
    publishEvents,
    complete: (taskToken, completion) =>
      completeAfterEvents(
        publishEvents,
        async (result) => {
          await clients.jobs.completeJob({ taskToken, jobResult: result });
        },
        taskToken,
        completion,
      ),
  };
}

/**
 * Whether a failed call may succeed if tried again: the server was
 * unreachable, overloaded or restarting (TRANSIENT_CODES of retry.ts). Anything
 * else (a lost lease, a rejected request) will fail the same way again.
 */
export function isRetryable(error: unknown): boolean {
  return isTransient(error);
}

/**
 * The transient codes of a lease extension or a completion: the shared ones,
 * and also resource_exhausted, which for these small calls means the
 * server's store is out of disk space; its writes work again once space is
 * freed, so the lease and the result are kept trying rather than given up.
 * (For published events resource_exhausted can also mean an event too
 * large, which stays final.)
 */
const LEASE_CALL_TRANSIENT_CODES = transientCodes({ adding: [Code.ResourceExhausted] });

/** Whether a lease extension or a completion may pass if tried again (see LEASE_CALL_TRANSIENT_CODES). */
export function isRetryableLeaseCall(error: unknown): boolean {
  return isTransient(error, LEASE_CALL_TRANSIENT_CODES);
}

/**
 * Whether a completion may pass if tried again: as a lease call, unless its
 * last events were refused, which is judged as a refused publish is.
 */
export function isRetryableCompletion(error: unknown): boolean {
  return error instanceof LastEventsRefusedError
    ? isRetryable(error.cause)
    : isRetryableLeaseCall(error);
}

/** Whether the server said the lease is gone (a newer attempt holds the job, or it finished). */
export function isLeaseLostError(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.FailedPrecondition;
}
