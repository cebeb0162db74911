/**
 * Dependencies between jobs, decided once for every backend (pure): a job
 * with `after` runs once each of those jobs COMPLETED, one with
 * `after_any` once each of those ended whatever the outcome. When a job of
 * `after` ends FAILED or CANCELLED, the dependent is CANCELLED with the
 * reason, and its own dependents follow ("and so on down the chain").
 *
 * Every dependency exists when the dependent is enqueued (the store checks,
 * with {@link missingDependency}), so a dependency is always older than its
 * dependent and no cycle can form. A store keeps, for each job, which jobs
 * wait on it, and asks {@link decideDependencies} again whenever one of
 * them ends.
 *
 * @module
 */
import { type JobParams, JobState } from "../../gen/job/v1/job_pb.ts";
import { FAILURE_REASON_WORKER_LOST } from "../protocol/attempts.ts";
import { InvalidArgumentError } from "../protocol/invalid_argument.ts";
import { isFinished } from "../protocol/job_state.ts";

/** What a dependent needs to know of one of its dependencies. */
export interface DependencyStatus {
  readonly state: JobState;
  /** The last attempt's exit code (a finished job's). */
  readonly exitCode: number;
  readonly failureReason: string;
}

/** What a job's dependencies allow now. */
export type DependencyVerdict =
  /** Every dependency ended as needed: the job may be leased (once due). */
  | { readonly kind: "ready" }
  /** Some have not ended yet: the job waits for these (in the order named). */
  | { readonly kind: "wait"; readonly waitingFor: readonly string[] }
  /** A dependency of `after` failed or was cancelled: the job is cancelled with `reason`. */
  | { readonly kind: "cancel"; readonly reason: string };

/** One dependency: the job, and whether any outcome will do (`after_any`). */
export interface Dependency {
  readonly jobId: string;
  readonly anyOutcome: boolean;
}

/** The dependencies `params` names, `after` first, then `after_any`. */
export function dependenciesOf(params: JobParams): Dependency[] {
  return [
    ...params.after.map((jobId) => ({ jobId, anyOutcome: false })),
    ...params.afterAny.map((jobId) => ({ jobId, anyOutcome: true })),
  ];
}

/** Whether `params` names any dependency. */
export function hasDependencies(params: JobParams): boolean {
  return params.after.length > 0 || params.afterAny.length > 0;
}

/**
 * Refuses the first dependency `exists` does not know, naming its field
 * (`job_params.after[1]`); an enqueue calls it before it stores anything.
 * @throws {InvalidArgumentError}
 */
export function missingDependency(params: JobParams, exists: (jobId: string) => boolean): void {
  for (const [field, ids] of [["after", params.after], ["after_any", params.afterAny]] as const) {
    ids.forEach((jobId, i) => {
      if (!exists(jobId)) {
        throw new InvalidArgumentError(`job_params.${field}[${i}]`, `job ${jobId} does not exist`);
      }
    });
  }
}

/**
 * What `params`' dependencies allow, given each one's status (undefined:
 * the job is gone, deleted by retention after it ended, which counts as
 * ended; for `after` a gone job cannot prove it COMPLETED, so it cancels).
 */
export function decideDependencies(
  params: JobParams,
  statusOf: (jobId: string) => DependencyStatus | undefined,
): DependencyVerdict {
  const waitingFor: string[] = [];
  for (const { jobId, anyOutcome } of dependenciesOf(params)) {
    const status = statusOf(jobId);
    if (status === undefined) {
      if (anyOutcome) continue;
      return { kind: "cancel", reason: `dependency ${jobId} no longer exists` };
    }
    if (!isFinished(status.state)) {
      waitingFor.push(jobId);
      continue;
    }
    if (anyOutcome || status.state === JobState.COMPLETED) continue;
    return { kind: "cancel", reason: failedDependencyReason(jobId, status) };
  }
  return waitingFor.length === 0 ? { kind: "ready" } : { kind: "wait", waitingFor };
}

/** "dependency 01.. failed with exit 2", "... was cancelled", "... failed: worker lost". */
function failedDependencyReason(jobId: string, status: DependencyStatus): string {
  if (status.state === JobState.CANCELLED) return `dependency ${jobId} was cancelled`;
  if (status.failureReason === FAILURE_REASON_WORKER_LOST) {
    return `dependency ${jobId} failed: its worker was lost`;
  }
  return `dependency ${jobId} failed with exit ${status.exitCode}`;
}
