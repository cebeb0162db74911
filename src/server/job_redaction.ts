/**
 * What readers of a job see of its secrets: the names, each value replaced
 * by `***`. Secret values go to the worker that leases the job (DequeueJob,
 * the WorkerSession push) and to no other reader; every RPC that returns a
 * job to a reader (GetJob, ListJobs, CancelJob) passes it through here.
 *
 * @module
 */
import type { Job, JobParams, Schedule } from "../../gen/job/v1/job_pb.ts";

/** What a reader sees in place of a secret value. */
export const REDACTED_SECRET = "***";

/**
 * `job` with its secret values replaced by {@link REDACTED_SECRET}; the job
 * itself when it has none. The store's object is never changed (the memory
 * store hands out what it keeps).
 */
export function redactJobForReaders(job: Job): Job {
  const jobParams = redactedParams(job.jobParams);
  return jobParams === job.jobParams ? job : { ...job, jobParams };
}

/** `schedule` as {@link redactJobForReaders} gives a job: its job's secret values hidden. */
export function redactScheduleForReaders(schedule: Schedule): Schedule {
  const jobParams = redactedParams(schedule.jobParams);
  return jobParams === schedule.jobParams ? schedule : { ...schedule, jobParams };
}

/** `params` with its secret values hidden; `params` itself when it has none. */
function redactedParams(params: JobParams | undefined): JobParams | undefined {
  if (params === undefined) return params;
  const names = Object.keys(params.secretEnvironment);
  if (names.length === 0) return params;
  return {
    ...params,
    secretEnvironment: Object.fromEntries(names.map((name) => [name, REDACTED_SECRET])),
  };
}
