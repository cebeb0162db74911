/**
 * Retention of the SQLite store: finished jobs older than the retention
 * period are deleted with their events, metadata pairs and dependency rows, a bounded batch
 * at a time, so that requests are never held up long.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { nextMacrotask } from "../../event_loop.ts";
import { StoreClosedError, StoreFullError } from "../errors.ts";
import type { SqlRunner } from "./sql_runner.ts";

/** Jobs and event rows deleted per retention transaction. */
const RETENTION_BATCH = 500;

/**
 * Deletes up to one batch of finished jobs older than `cutoffMs`, with
 * their events, metadata pairs and job_dependencies rows; returns how many jobs went (0 once
 * `isClosed()` turns true). Event rows go in batches of their own, so a job
 * with a huge log never holds the database long.
 */
export async function deleteFinishedBefore(
  runner: SqlRunner,
  cutoffMs: number,
  isClosed: () => boolean,
): Promise<number> {
  const jobs = runner.sql(
    "SELECT id FROM jobs WHERE finished_at_ms < ? ORDER BY finished_at_ms LIMIT ?",
  ).all(cutoffMs, RETENTION_BATCH) as unknown as { id: number }[];
  for (const { id } of jobs) {
    const deleteEvents = runner.sql(
      "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE job = ? LIMIT ?)",
    );
    while (!isClosed() && Number(deleteEvents.run(id, RETENTION_BATCH).changes) > 0) {
      await nextMacrotask();
    }
    if (isClosed()) return 0;
    // The pairs go with the row, in one commit: a pair left behind would
    // match the next job given this id (one above the highest, at open).
    // So would a dependency row, which a finished job no longer has (its own
    // go when it ends, sqlite_dependencies.ts); those it could have are the
    // ones of its waiting_for, found by the key.
    runner.transaction(() => {
      runner.sql("DELETE FROM job_metadata WHERE job = ?").run(id);
      runner.sql(
        `DELETE FROM job_dependencies WHERE job = ?1 AND dependency IN
        (SELECT value FROM json_each((SELECT waiting_for FROM jobs WHERE id = ?1)))`,
      ).run(id);
      runner.sql("DELETE FROM jobs WHERE id = ?").run(id);
    });
  }
  return jobs.length;
}

/** What the retention loop needs. */
export interface RetentionLoopOptions {
  readonly clock: Clock;
  readonly retentionMs: number;
  readonly intervalMs: number;
  /** Ends the loop. */
  readonly signal: AbortSignal;
  /** One batch of {@link deleteFinishedBefore}. */
  readonly deleteBatch: (cutoffMs: number) => Promise<number>;
  /** Told of an error of a sweep (which is retried next interval). */
  readonly onError: (error: unknown) => void;
}

/** Sweeps every `intervalMs` until `signal` aborts. */
export async function retainLoop(options: RetentionLoopOptions): Promise<void> {
  const { clock, retentionMs, intervalMs, signal } = options;
  while (!signal.aborted) {
    try {
      while (
        !signal.aborted && await options.deleteBatch(clock.now() - retentionMs) > 0
      ) {
        await nextMacrotask();
      }
    } catch (error) {
      // A full disk was told once when it turned full (see DiskWatch).
      if (!(error instanceof StoreClosedError || error instanceof StoreFullError)) {
        options.onError(error);
      }
    }
    await clock.sleep(intervalMs, signal);
  }
}
