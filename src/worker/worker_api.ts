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
}

/** What a worker does to the queue. */
export interface WorkerApi {
  /** Waits for and leases up to `maxJobs` jobs of `queue` (none when the wait ends). */
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
  /** Records the leased job's result. */
  complete(taskToken: string, result: JobResult): Promise<void>;
  /** Ends the API's connection once the worker has stopped (nothing to end when absent). */
  close?(): Promise<void>;
}

/** Longest a single DequeueJob call may wait before the client gives up on it. */
const CLAIM_DEADLINE_MS = 90_000;

/** The WorkerApi over Connect RPC. */
export function createRpcWorkerApi(clients: AirunnerClients): WorkerApi {
  return {
    async claim(queue, { maxJobs, visibilityTimeoutSeconds, signal }) {
      const leased: LeasedJob[] = [];
      try {
        const stream = clients.jobs.dequeueJob(
          { queue, maxJobs, visibilityTimeoutSeconds },
          { signal, timeoutMs: CLAIM_DEADLINE_MS },
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
    },
    async extendLease(taskToken, queue, visibilityTimeoutSeconds) {
      const { cancelled } = await clients.jobs.updateJob({
        taskToken,
        queue,
        visibilityTimeoutSeconds,
      });
      return { cancelled };
    },
    async publishEvents(taskToken, events) {
      await clients.events.publishJobEvents(
        (async function* () {
          yield { taskToken, events: [...events] };
        })(),
      );
    },
    async complete(taskToken, result) {
      await clients.jobs.completeJob({ taskToken, jobResult: result });
    },
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
