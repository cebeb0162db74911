/**
 * RedriveJobs and RerunJob: running failed work again. Redrive selects dead
 * letters (FAILED jobs that used every attempt) by the request's filter and
 * asks the store to put each back; rerun enqueues a copy of a job's
 * parameters, secret values included (which no reader of the API can see,
 * so only the server can copy them), with rerun_of naming the original.
 *
 * @module
 */
import { clone } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type ExecutionConfig,
  type Job,
  JobParamsSchema,
  JobState,
} from "../../gen/job/v1/job_pb.ts";
import { isRedrivable } from "../protocol/attempts.ts";
import { MAX_REDRIVE_JOBS } from "../protocol/limits.ts";
import type { RedriveFilter } from "../protocol/request_validation.ts";
import { JobNotRedrivableError } from "../store/errors.ts";
import type { JobStore } from "../store/job_store.ts";

/** Jobs listed per page while looking for dead letters. */
const SCAN_PAGE_SIZE = 500;

/** Whether `job` is a dead letter that `filter` selects. */
export function redriveSelects(job: Job, filter: RedriveFilter): boolean {
  if (job.state !== JobState.FAILED || !isRedrivable(job.failureReason)) return false;
  if (filter.queue !== undefined && job.queue !== filter.queue) return false;
  if (filter.finishedAfterMs > 0) {
    if (job.updatedAt === undefined || timestampMs(job.updatedAt) < filter.finishedAfterMs) {
      return false;
    }
  }
  const metadata = job.jobParams?.metadata ?? {};
  for (const [key, value] of Object.entries(filter.metadata)) {
    if (metadata[key] !== value) return false;
  }
  if (filter.exitCodes.length > 0 && !filter.exitCodes.includes(job.result?.exitCode ?? 0)) {
    return false;
  }
  return true;
}

/**
 * Puts back every dead letter `filter` selects, oldest first, up to
 * {@link MAX_REDRIVE_JOBS}; with `dryRun`, only says which. A job that
 * changed meanwhile (redriven by another call, say) is passed by.
 */
export async function redriveJobs(store: JobStore, filter: RedriveFilter): Promise<Job[]> {
  const selected: Job[] = [];
  for (let page = 1, lastPage = 1; page <= lastPage; page++) {
    const listed = await store.listJobs({
      page,
      pageSize: SCAN_PAGE_SIZE,
      state: JobState.FAILED,
      ...(filter.queue === undefined ? {} : { queue: filter.queue }),
    });
    lastPage = listed.lastPage;
    selected.push(...listed.jobs.filter((job) => redriveSelects(job, filter)));
    // Listings are newest first and the oldest go back first: keep only the
    // oldest MAX_REDRIVE_JOBS seen, so memory stays bounded.
    if (selected.length > MAX_REDRIVE_JOBS) selected.splice(0, selected.length - MAX_REDRIVE_JOBS);
  }
  const chosen = selected.reverse();
  if (filter.dryRun) return chosen;
  const redriven: Job[] = [];
  for (const job of chosen) {
    try {
      redriven.push(await store.redrive(job.jobId));
    } catch (error) {
      if (!(error instanceof JobNotRedrivableError)) throw error;
    }
  }
  return redriven;
}

/** Enqueues a new job with `jobId`'s parameters and a link back to it. */
export async function rerunJob(
  store: JobStore,
  request: { readonly jobId: string; readonly requestId: string },
  executionConfig: ExecutionConfig,
): Promise<Job> {
  const original = await store.getJob(request.jobId);
  const params = clone(JobParamsSchema, original.jobParams!);
  params.rerunOf = original.jobId;
  const { job } = await store.enqueue({
    requestId: request.requestId,
    queue: original.queue,
    params,
    executionConfig,
  });
  return job;
}
