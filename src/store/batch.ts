/**
 * Pure helpers for batched store calls: settling each item of a batch on its
 * own, and recognising a completion that is a resend of the one already
 * recorded (a worker whose stream broke before the acknowledgement arrived).
 *
 * @module
 */
import type { JobResult } from "../../gen/job/v1/job_pb.ts";
import type { BatchOutcome } from "./job_store.ts";
import { StoreFullError } from "./errors.ts";

/** Runs `work` on each item in order, catching each item's error into its outcome. */
export async function settleEach<I, T>(
  items: readonly I[],
  work: (item: I) => Promise<T>,
): Promise<BatchOutcome<T>[]> {
  const outcomes: BatchOutcome<T>[] = [];
  for (const item of items) outcomes.push(await settle(() => work(item)));
  return outcomes;
}

/**
 * Like {@link settleEach}, for synchronous work inside one transaction. A
 * disk that refuses a write fails the whole batch (rethrown): SQLite may
 * have rolled the transaction back with it, items before it included.
 */
export function settleEachSync<I, T>(items: readonly I[], work: (item: I) => T): BatchOutcome<T>[] {
  return items.map((item) => {
    try {
      return { ok: true, value: work(item) };
    } catch (error) {
      if (error instanceof StoreFullError) throw error;
      return { ok: false, error };
    }
  });
}

/** `work`'s value or error as an outcome. */
export async function settle<T>(work: () => Promise<T>): Promise<BatchOutcome<T>> {
  try {
    return { ok: true, value: await work() };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Whether `resent` repeats the completion that finished a job with
 * `stored`: same job, outcome, exit code and message. A worker sends the same
 * result again when its acknowledgement was lost; a different result from the
 * same attempt is a real conflict and still refused.
 */
export function isCompletionResend(stored: JobResult | undefined, resent: JobResult): boolean {
  return stored !== undefined && stored.jobId === resent.jobId &&
    stored.success === resent.success && stored.exitCode === resent.exitCode &&
    stored.errorMessage === resent.errorMessage;
}
