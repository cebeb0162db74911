/**
 * Leasing for a worker session that serves several queues, in the order the
 * worker prefers them, with the store's one-queue dequeue.
 *
 * A round first tries each queue in order without waiting, so when several
 * have work the first one's jobs go first and later queues fill only the
 * credits left. When none has work, it waits on all of them at once (each
 * store wakes its own waiters: the embedded stores per queue on enqueue,
 * the AWS store by long polls) and ends that wait as soon as one brings
 * jobs.
 *
 * The wait never takes more jobs than the credits when the credits cover
 * one job per queue: the credits are shared out among the waits. With
 * fewer credits than queues, each wait may take one job, and two queues
 * that get work at the same moment may both lease one; the extra jobs (the
 * later queues') are handed back at once, as jobs a session cannot send are.
 *
 * @module
 */
import type { Logger } from "../logger.ts";
import type { JobStore, LeasedJob } from "../store/job_store.ts";
import { handBackLeasedJobs } from "./hand_back.ts";

/** How to lease for one session. */
export interface QueueOrderLeaseOptions {
  /** Lease at most this many jobs (>= 1): the session's credits. */
  readonly maxJobs: number;
  readonly visibilityTimeoutMs: number;
  readonly workerName: string;
  /** Ends the wait; the lease then resolves with the jobs it has (often none). */
  readonly signal: AbortSignal;
}

/**
 * How long a try of one queue may wait: as short as the store allows. The
 * embedded stores look once and return; the AWS store's shortest long poll
 * is one second, so on AWS an empty queue delays the next one by up to that.
 */
const TRY_WAIT_MS = 1;

/**
 * Leases up to `options.maxJobs` jobs from `queues`, the first queue's
 * before the second's, waiting until one of them has work. With one queue
 * this is the store's dequeue.
 *
 * @example
 * ```ts
 * const jobs = await leaseInQueueOrder(store, ["build", "test"], logger, {
 *   maxJobs: 2, visibilityTimeoutMs: 60_000, workerName: "ci-1", signal,
 * });
 * ```
 */
export async function leaseInQueueOrder(
  store: JobStore,
  queues: readonly string[],
  logger: Logger,
  options: QueueOrderLeaseOptions,
): Promise<LeasedJob[]> {
  const { maxJobs, visibilityTimeoutMs, workerName, signal } = options;
  if (queues.length === 1) {
    return await store.dequeue(queues[0]!, { maxJobs, visibilityTimeoutMs, workerName, signal });
  }
  const leased: LeasedJob[] = [];
  try {
    for (const queue of queues) {
      if (leased.length >= maxJobs || signal.aborted) break;
      leased.push(
        ...await store.dequeue(queue, {
          maxJobs: maxJobs - leased.length,
          visibilityTimeoutMs,
          workerName,
          signal,
          maxWaitMs: TRY_WAIT_MS,
        }),
      );
    }
  } catch (error) {
    // A later queue failed (throttled, a full disk): the earlier queues'
    // jobs go back at once rather than wait out their leases.
    await handBackLeasedJobs(
      store,
      logger,
      leased,
      "could not hand back a job after a failed lease",
    );
    throw error;
  }
  if (leased.length > 0 || signal.aborted) return leased;
  return await waitOnAll(store, queues, logger, options);
}

/** Waits on every queue at once; the first that brings jobs ends the others' waits. */
async function waitOnAll(
  store: JobStore,
  queues: readonly string[],
  logger: Logger,
  { maxJobs, visibilityTimeoutMs, workerName, signal }: QueueOrderLeaseOptions,
): Promise<LeasedJob[]> {
  const settled = new AbortController();
  const onAbort = () => settled.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  if (signal.aborted) settled.abort();
  const budgets = shareCredits(maxJobs, queues.length);
  let outcomes: PromiseSettledResult<LeasedJob[]>[];
  try {
    outcomes = await Promise.allSettled(queues.map(async (queue, i) => {
      try {
        const jobs = await store.dequeue(queue, {
          maxJobs: budgets[i]!,
          visibilityTimeoutMs,
          workerName,
          signal: settled.signal,
        });
        if (jobs.length > 0) settled.abort();
        return jobs;
      } catch (error) {
        settled.abort();
        throw error;
      }
    }));
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  // In queue order, so what is kept is the preferred queues' work.
  const leased = outcomes.flatMap((o) => o.status === "fulfilled" ? o.value : []);
  const failure = outcomes.find((o) => o.status === "rejected");
  const kept = failure === undefined ? leased.slice(0, maxJobs) : [];
  await handBackLeasedJobs(
    store,
    logger,
    leased.slice(kept.length),
    "could not hand back a job leased beyond the session's credits",
  );
  if (failure !== undefined) throw failure.reason;
  return kept;
}

/**
 * Shares `credits` among `waits` waits, the earlier ones taking the
 * remainder; each gets at least one even when that exceeds the credits.
 *
 * @example
 * ```ts
 * shareCredits(5, 2); // [3, 2]
 * shareCredits(1, 3); // [1, 1, 1]
 * ```
 */
export function shareCredits(credits: number, waits: number): number[] {
  const base = Math.floor(credits / waits);
  const extra = credits % waits;
  return Array.from({ length: waits }, (_, i) => Math.max(1, base + (i < extra ? 1 : 0)));
}
