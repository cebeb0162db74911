/**
 * What the server adds to every job it creates, whichever call creates it
 * (EnqueueJob, EnqueueJobs, a schedule's firing, RunSchedule): the default
 * retry policy of `--default-retries` for a job that names none.
 *
 * @module
 */
import type { RetryPolicy } from "../../gen/job/v1/job_pb.ts";
import type { EnqueueInput } from "../protocol/job_requests.ts";

/** `input` with the server's default retry policy when it names none. */
export function withDefaultRetry<T extends Pick<EnqueueInput, "params">>(
  input: T,
  defaultRetry: RetryPolicy | undefined,
): T {
  if (defaultRetry === undefined || input.params.retry !== undefined) return input;
  return { ...input, params: { ...input.params, retry: defaultRetry } };
}
