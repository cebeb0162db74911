/**
 * RedriveJobs and RerunJob: running failed work again. Redrive selects dead
 * letters (FAILED jobs that used every attempt) by the request's filter and
 * asks the store to put each back; rerun enqueues a copy of a job's
 * parameters, secret values included (which no reader of the API can see,
 * so only the server can copy them), with rerun_of naming the original.
 *
 * Both run a job again with the secret values someone else supplied, which
 * a submit-scoped caller could not do before (it sees secret names only).
 * So a job with secret environment is put back or rerun only for a caller
 * that may replay secrets (admin, or no authentication at all); anyone
 * else gets permission_denied naming the jobs, and nothing is changed.
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
import { isDeadLetter } from "../protocol/attempts.ts";
import { MAX_REDRIVE_JOBS } from "../protocol/limits.ts";
import type { RedriveFilter } from "../protocol/request_validation.ts";
import { PermissionDeniedError } from "../auth/errors.ts";
import { JobNotRedrivableError } from "../store/errors.ts";
import type { JobStore } from "../store/job_store.ts";

/** Jobs listed per page while looking for dead letters. */
const SCAN_PAGE_SIZE = 500;

/** Who asks: whether they may run a job again with secret values they were never shown. */
export interface ReplayRights {
  readonly maySecrets: boolean;
}

/** Whether `job` is a dead letter that `filter` selects. */
export function redriveSelects(job: Job, filter: RedriveFilter): boolean {
  if (!isDeadLetter(job.state, job.failureReason)) return false;
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
export async function redriveJobs(
  store: JobStore,
  filter: RedriveFilter,
  rights: ReplayRights,
  signal: AbortSignal,
): Promise<Job[]> {
  const selected: Job[] = [];
  for (let page = 1, lastPage = 1; page <= lastPage; page++) {
    signal.throwIfAborted();
    const listed = await store.listJobs({
      page,
      pageSize: SCAN_PAGE_SIZE,
      state: JobState.FAILED,
      ...(filter.queue === undefined ? {} : { queue: filter.queue }),
    });
    lastPage = listed.lastPage;
    // A job that failed meanwhile shifts the newest-first pages: one seen
    // twice is listed once.
    const seen = new Set(selected.map((job) => job.jobId));
    selected.push(
      ...listed.jobs.filter((job) => !seen.has(job.jobId) && redriveSelects(job, filter)),
    );
    // Listings are newest first and the oldest go back first: keep only the
    // oldest MAX_REDRIVE_JOBS seen, so memory stays bounded.
    if (selected.length > MAX_REDRIVE_JOBS) selected.splice(0, selected.length - MAX_REDRIVE_JOBS);
  }
  const chosen = selected.reverse();
  if (filter.dryRun) return chosen;
  refuseSecretReplay(chosen, rights);
  const redriven: Job[] = [];
  for (const job of chosen) {
    // A caller that gave up gets no answer: stop between jobs rather than
    // go on changing jobs it will never hear about. Those already put back stay back.
    if (signal.aborted) break;
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
  rights: ReplayRights,
): Promise<Job> {
  const original = await store.getJob(request.jobId);
  refuseSecretReplay([original], rights);
  const params = clone(JobParamsSchema, original.jobParams!);
  params.rerunOf = original.jobId;
  // A rerun runs now: the original's delayed start was about its own first run.
  params.delayMs = 0n;
  params.runAt = undefined;
  // And its dependencies were about the original's run: a rerun of a job
  // their failure cancelled would be cancelled again at once.
  params.after = [];
  params.afterAny = [];
  const { job } = await store.enqueue({
    requestId: request.requestId,
    queue: original.queue,
    params,
    executionConfig,
  });
  return job;
}

/**
 * @throws {PermissionDeniedError} when a job in `jobs` has secret environment
 * and the caller may not replay secrets; it names up to five of them.
 */
function refuseSecretReplay(jobs: readonly Job[], rights: ReplayRights): void {
  if (rights.maySecrets) return;
  const secret = jobs.filter((job) =>
    Object.keys(job.jobParams?.secretEnvironment ?? {}).length > 0
  );
  if (secret.length === 0) return;
  const named = secret.slice(0, 5).map((job) => job.jobId).join(", ");
  const more = secret.length > 5 ? ` and ${secret.length - 5} more` : "";
  throw new PermissionDeniedError(
    `${named}${more} ${secret.length === 1 ? "has" : "have"} secret environment; running ` +
      "it again with its stored values needs admin scope (or submit it anew with --secret-env)",
  );
}
