/**
 * Job dependencies in the SQLite store (the rules are dependencies.ts's).
 * A waiting job is SCHEDULED with ready_key NULL and waiting_for set, so
 * neither a dequeue nor the promotion of delayed starts sees it; it has a
 * job_dependencies row for each job it still waits on, exactly while it
 * waits (schema.ts). Every write here runs inside the transaction of the
 * enqueue or the finish that caused it: a chain a → b → c cancelled by a's
 * failure ends in one commit.
 *
 * @module
 */
import { fromBinary } from "@bufbuild/protobuf";
import {
  type JobParams,
  JobParamsSchema,
  JobResultSchema,
  JobState,
} from "../../../gen/job/v1/job_pb.ts";
import type { EnqueueResult } from "../job_store.ts";
import { isFinished } from "../../protocol/job_state.ts";
import {
  decideDependencies,
  type DependencyStatus,
  type DependencyVerdict,
  hasDependencies,
  missingDependency,
} from "../dependencies.ts";
import { decideCancel } from "../lifecycle.ts";
import type { LeaseExpiryTimer } from "../lease_expiry_timer.ts";
import type { Notifier } from "../notifier.ts";
import { VIEW_COLUMNS, viewOfRow, type ViewRow } from "./job_rows.ts";
import { SQL as JOB_SQL, writeFinish } from "./job_statements.ts";
import type { SqlRunner } from "./sql_runner.ts";

const SQL = {
  exists: "SELECT 1 AS found FROM jobs WHERE job_id = ?",
  statusOf: "SELECT state, result, failure_reason FROM jobs WHERE job_id = ?",
  viewById: `SELECT ${VIEW_COLUMNS}, params FROM jobs WHERE id = ?`,
  insertDependency: "INSERT OR IGNORE INTO job_dependencies (dependency, job) VALUES (?, ?)",
  anyDependency: "SELECT 1 FROM job_dependencies LIMIT 1",
  /** The jobs that waited on one that ended; their rows on it go. */
  takeDependents: "DELETE FROM job_dependencies WHERE dependency = ? RETURNING job",
  /** A job's own rows, found through its waiting_for (the key leads with the dependency). */
  forget:
    "DELETE FROM job_dependencies WHERE job = ? AND dependency IN (SELECT value FROM json_each(?))",
  setWaiting: "UPDATE jobs SET waiting_for = ? WHERE id = ?",
  /** Its dependencies allow it: into its queue as a new job (ready_key = its id), or its delayed start. */
  ready: "UPDATE jobs SET waiting_for = NULL, ready_key = ? WHERE id = ?",
  cancelled:
    "UPDATE jobs SET waiting_for = NULL, cancel_reason = ?, updated_at_ms = ? WHERE id = ?",
} as const;

/** What the end of a job did to the jobs that waited on it, for the store to wake after the commit. */
export interface DependentChanges {
  /** The queue of each job that joined its queue, once per job. */
  readonly due: string[];
  /** The delayed starts, still ahead, of jobs whose dependencies now allow them. */
  readonly delayedUntilMs: number[];
  /** The jobs cancelled because a dependency failed or was cancelled. */
  readonly cancelled: string[];
}

/** A row of a dependent: the lifecycle's view and its parameters. */
type DependentRow = ViewRow & { params: Uint8Array };

const READY: DependencyVerdict = { kind: "ready" };

/** Dependencies of the SQLite store's jobs, on one database. */
export class SqliteDependencies {
  readonly #run: SqlRunner;
  /**
   * Whether any job of this database may wait on another: until one does,
   * a finish skips the dependents query (a statement per completion that
   * most stores, which never use dependencies, would pay for nothing).
   */
  #mayHaveDependents: boolean;

  constructor(run: SqlRunner) {
    this.#run = run;
    this.#mayHaveDependents = run.sql(SQL.anyDependency).get() !== undefined;
  }

  /**
   * What a new job's dependencies allow; runs before the enqueue writes
   * anything.
   * @throws {InvalidArgumentError} naming the first dependency that does not exist.
   */
  decideNew(params: JobParams): DependencyVerdict {
    if (!hasDependencies(params)) return READY;
    missingDependency(params, (jobId) => this.#run.sql(SQL.exists).get(jobId) !== undefined);
    return this.#decide(params);
  }

  /**
   * Persists `verdict` for a job just written (its waiting_for already):
   * the rows of what it waits on, or its cancel as the lifecycle decides
   * (it has no dependents yet, nor followers). Returns whether it was
   * cancelled.
   */
  placeNew(job: { id: number; jobId: string }, verdict: DependencyVerdict, now: number): boolean {
    if (verdict.kind === "wait") this.#addRows(job.id, verdict.waitingFor);
    if (verdict.kind !== "cancel") return false;
    const row = this.#run.sql(JOB_SQL.viewByJobId).get(job.jobId) as ViewRow | undefined;
    if (row === undefined) throw new Error(`bug: job ${job.jobId} was just written`);
    this.#cancel(row, verdict.reason, now, { due: [], delayedUntilMs: [], cancelled: [] });
    return true;
  }

  /**
   * After the finish of `ended` was written, in the same transaction: drops
   * what it waited on itself (a waiting job cancelled), and decides again
   * every job that waited on it: each joins its queue (or its delayed
   * start), is cancelled (and so on down the chain), or waits on the rest.
   */
  ended(ended: ViewRow, now: number): DependentChanges {
    const changes: DependentChanges = { due: [], delayedUntilMs: [], cancelled: [] };
    if (!this.#mayHaveDependents) return changes;
    // A worklist, not recursion: a cancel down a chain of thousands of jobs
    // decides each link in turn instead of nesting a call per link.
    const endedJobs: ViewRow[] = [ended];
    for (let next = endedJobs.shift(); next !== undefined; next = endedJobs.shift()) {
      this.#ended(next, now, changes, endedJobs);
    }
    return changes;
  }

  #ended(ended: ViewRow, now: number, changes: DependentChanges, endedJobs: ViewRow[]): void {
    if (ended.waiting_for !== null) {
      this.#run.sql(SQL.forget).run(ended.id, ended.waiting_for);
    }
    const dependents = this.#run.sql(SQL.takeDependents).all(ended.job_id) as unknown as {
      job: number;
    }[];
    for (const { job } of dependents) {
      const row = this.#run.sql(SQL.viewById).get(job) as DependentRow | undefined;
      // Rows go when their job ends; one left behind is no reason to fail the finish.
      if (row === undefined || isFinished(row.state)) continue;
      const verdict = this.#decide(fromBinary(JobParamsSchema, row.params));
      switch (verdict.kind) {
        case "wait":
          this.#run.sql(SQL.setWaiting).run(JSON.stringify(verdict.waitingFor), row.id);
          // Rows it has stay; one is new only if a dependency was redriven since.
          this.#addRows(row.id, verdict.waitingFor);
          break;
        case "ready":
          this.#ready(row, now, changes);
          break;
        case "cancel":
          endedJobs.push(this.#cancel(row, verdict.reason, now, changes));
          break;
      }
    }
  }

  /** Puts a job whose dependencies all ended as needed in its queue, or back on its delayed start. */
  #ready(row: ViewRow, now: number, changes: DependentChanges): void {
    const notBeforeMs = row.not_before_ms ?? 0;
    const delayed = notBeforeMs > now;
    this.#run.sql(SQL.ready).run(delayed ? null : row.id, row.id);
    if (delayed) changes.delayedUntilMs.push(notBeforeMs);
    else changes.due.push(row.queue);
  }

  /** Cancels a waiting job as the lifecycle decides; returns it, whose own dependents are next. */
  #cancel(row: ViewRow, reason: string, now: number, changes: DependentChanges): ViewRow {
    const decision = decideCancel(viewOfRow(row), { reason }, now);
    if (decision.kind !== "finish") throw new Error(`bug: waiting job ${row.job_id} is running`);
    if (row.waiting_for !== null) this.#run.sql(SQL.forget).run(row.id, row.waiting_for);
    this.#run.sql(SQL.cancelled).run(decision.cancelReason, now, row.id);
    writeFinish(this.#run, row, decision, now);
    changes.cancelled.push(row.job_id);
    return { ...row, waiting_for: null };
  }

  #addRows(id: number, waitingFor: readonly string[]): void {
    if (waitingFor.length > 0) this.#mayHaveDependents = true;
    for (const jobId of waitingFor) this.#run.sql(SQL.insertDependency).run(jobId, id);
  }

  #decide(params: JobParams): DependencyVerdict {
    return decideDependencies(params, (jobId) => this.#statusOf(jobId));
  }

  #statusOf(jobId: string): DependencyStatus | undefined {
    const row = this.#run.sql(SQL.statusOf).get(jobId) as
      | { state: number; result: Uint8Array | null; failure_reason: string }
      | undefined;
    if (row === undefined) return undefined;
    return {
      state: row.state,
      // Only a finished job has a result, and only a failed one's exit code is read.
      exitCode: row.result === null ? 0 : fromBinary(JobResultSchema, row.result).exitCode,
      failureReason: row.failure_reason,
    };
  }
}

/** Whether an enqueue put a new job in its queue now (neither waiting nor cancelled). */
export function joinsQueue(result: EnqueueResult): boolean {
  return result.created && result.job.state === JobState.SCHEDULED &&
    result.job.waitingFor.length === 0;
}

/**
 * Wakes whom the changes concern, once they are written: a dequeue of its
 * queue for each job made due, the followers of each job cancelled, and
 * the expiry timer for the earliest delayed start. (Inside a caller's
 * transaction the woken run only after the call, and so its commit, ends.)
 */
export function wakeDependents(
  { due, delayedUntilMs, cancelled }: DependentChanges,
  queueWaiters: Notifier<string>,
  jobWatchers: Notifier<string>,
  expiryTimer: LeaseExpiryTimer,
): void {
  for (const queue of due) queueWaiters.notify(queue, 1);
  for (const jobId of cancelled) jobWatchers.notify(jobId);
  if (delayedUntilMs.length > 0) expiryTimer.arm(Math.min(...delayedUntilMs));
}
