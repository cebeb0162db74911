/**
 * Which jobs of the memory store wait on which (see dependencies.ts for the
 * rules): for each job, the waiting jobs that named it, so that when it
 * ends each of them is decided again.
 *
 * @module
 */
import type { Job } from "../../gen/job/v1/job_pb.ts";
import { isFinished } from "../protocol/job_state.ts";
import {
  decideDependencies,
  type DependencyStatus,
  type DependencyVerdict,
} from "./dependencies.ts";

/** The dependents of the memory store's jobs. */
export class MemoryDependents<R extends { readonly job: Job }> {
  readonly #waiting = new Map<string, Set<R>>();
  readonly #statusOf: (jobId: string) => DependencyStatus | undefined;

  /** `statusOf` reads a job's status (undefined: no such job). */
  constructor(statusOf: (jobId: string) => DependencyStatus | undefined) {
    this.#statusOf = statusOf;
  }

  /** What `record`'s dependencies allow now; a waiting one is kept, to be decided again. */
  decide(record: R): DependencyVerdict {
    const verdict = decideDependencies(record.job.jobParams!, this.#statusOf);
    record.job.waitingFor = verdict.kind === "wait" ? [...verdict.waitingFor] : [];
    if (verdict.kind === "wait") {
      for (const jobId of verdict.waitingFor) {
        let set = this.#waiting.get(jobId);
        if (set === undefined) this.#waiting.set(jobId, set = new Set());
        set.add(record);
      }
    }
    return verdict;
  }

  /**
   * The jobs that waited on `jobId`, which just ended, each with what its
   * dependencies allow now (those finished meanwhile, cancelled, are left out).
   */
  ended(jobId: string): { record: R; verdict: DependencyVerdict }[] {
    const dependents = this.#waiting.get(jobId);
    if (dependents === undefined) return [];
    this.#waiting.delete(jobId);
    return [...dependents]
      .filter((record) => !isFinished(record.job.state))
      .map((record) => ({ record, verdict: this.decide(record) }));
  }
}

/** The status a dependent reads of a memory store's job. */
export function statusOfJob(job: Job | undefined): DependencyStatus | undefined {
  if (job === undefined) return undefined;
  return {
    state: job.state,
    exitCode: job.result?.exitCode ?? 0,
    failureReason: job.failureReason,
  };
}
