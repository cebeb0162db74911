/**
 * Handing leased jobs back to their queue at once: a job the server leased
 * for a worker that never received it (the call ended, the session stopped)
 * goes back now instead of waiting out its visibility timeout.
 *
 * @module
 */
import type { Logger } from "../logger.ts";
import type { JobStore, LeasedJob } from "../store/job_store.ts";

/**
 * Ends the lease of each of `jobs` (a zero visibility timeout), one after
 * the other. A failure is logged as `failureMessage` and skipped: that job
 * returns when its lease expires.
 */
export async function handBackLeasedJobs(
  store: JobStore,
  logger: Logger,
  jobs: readonly LeasedJob[],
  failureMessage: string,
): Promise<void> {
  for (const { job, taskToken } of jobs) {
    try {
      await store.updateLease(taskToken, job.queue, 0);
    } catch (error) {
      logger.warn({ jobId: job.jobId, err: error }, failureMessage);
    }
  }
}
