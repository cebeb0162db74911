/**
 * The one conditional write that ends a job nobody runs any more (see
 * finish_job.ts, which also tells the jobs waiting on it): conditional on
 * the attempt that was read, so a concurrent claim or completion wins
 * cleanly.
 *
 * @module
 */
import { countAttemptEnd } from "../attempt_records.ts";
import { JobState } from "../../../gen/job/v1/job_pb.ts";
import { type Finish, leaseExpired } from "../lifecycle.ts";
import { logTopOf } from "./events.ts";
import { type JobRecord, jobRecordOf, viewOf } from "./job_item.ts";
import { expressionOf, finishUpdate, mergeUpdates } from "./job_updates.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

const S = JobState;

/** What {@link writeFinish} answers. */
export interface FinishWritten {
  /** The job as it is afterwards (re-read when someone else changed it first). */
  readonly record: JobRecord;
  /** Whether this write ended it (then `record` is the item right after it, with its dependents). */
  readonly ended: boolean;
}

/**
 * Writes `finish` to a job that is not running (any more), or whose lease
 * holder is handing it back. `cancelReason`, when given, is recorded in
 * the same write (a dependent cancelled because of its dependency).
 */
export async function writeFinish(
  ctx: AwsStoreContext,
  record: JobRecord,
  finish: Finish,
  now: number,
  cancelReason?: string,
): Promise<FinishWritten> {
  const handBack = record.state === S.RUNNING && !leaseExpired(viewOf(record), now);
  // Only an attempt that ends needs its event range.
  const highest = finish.attemptEnd === undefined
    ? record.sequenceBase
    : (await logTopOf(ctx, record)).highest;
  const ending = finishUpdate(record, finish, highest, now, ctx.ttlSeconds(now));
  const update = expressionOf(
    cancelReason === undefined
      ? ending
      : mergeUpdates(ending, { set: { cancel_reason: { S: cancelReason } }, remove: [] }),
  );
  const out = await ctx.updateJobIf(record.jobId, update, {
    // A lease holder handing a cancelled job back ends it while still holding it.
    expression: handBack
      ? "attempt = :attempt AND #state IN (:scheduled, :running)"
      : "attempt = :attempt AND (#state = :scheduled OR (#state = :running AND lease_expires_at <= :now))",
    values: {
      ":scheduled": num(S.SCHEDULED),
      ":running": num(S.RUNNING),
      ...(handBack ? {} : { ":now": num(now) }),
      ":attempt": num(record.attempt),
    },
  }, "ALL_NEW");
  // A failed condition: someone else changed the job first; it is as they left it.
  if (out === undefined) return { record: await ctx.record(record.jobId), ended: false };
  countAttemptEnd(finish);
  ctx.jobWatchers.notify(record.jobId);
  return { record: jobRecordOf(out.Attributes!), ended: true };
}
