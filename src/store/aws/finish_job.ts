/**
 * Persisting the end the lifecycle decides for a job nobody runs any more:
 * cancelled while it waited or when its lease holder hands it back, or
 * whose lease ran out with a cancel asked for or its lost workers' budget
 * used up (see decideCancel, decideHandBack, decideExpiry and decideLease in
 * ../lifecycle.ts). The write is conditional on the attempt that was read,
 * so a concurrent claim or completion wins cleanly.
 *
 * @module
 */
import { countAttemptEnd } from "../attempt_records.ts";
import { JobState } from "../../../gen/job/v1/job_pb.ts";
import { decideExpiry, type Finish, leaseExpired } from "../lifecycle.ts";
import { logTopOf } from "./events.ts";
import { type JobRecord, jobRecordOf, viewOf } from "./job_item.ts";
import { expressionOf, finishUpdate } from "./job_updates.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

const S = JobState;

/**
 * Writes `finish` to a job that is not running (any more), or whose lease
 * holder is handing it back; answers the record as it is afterwards
 * (re-read when someone else changed it first).
 */
export async function finishJob(
  ctx: AwsStoreContext,
  record: JobRecord,
  finish: Finish,
  now: number,
): Promise<JobRecord> {
  const handBack = record.state === S.RUNNING && !leaseExpired(viewOf(record), now);
  // Only an attempt that ends needs its event range.
  const highest = finish.attemptEnd === undefined
    ? record.sequenceBase
    : (await logTopOf(ctx, record)).highest;
  const update = expressionOf(
    finishUpdate(record, finish, highest, now, ctx.ttlSeconds(now)),
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
  if (out === undefined) return await ctx.record(record.jobId);
  countAttemptEnd(finish);
  ctx.jobWatchers.notify(record.jobId);
  return jobRecordOf(out.Attributes!);
}

/**
 * `record`, with what the lifecycle's expiry decides written when it ends
 * the job (a cancelled job whose lease ran out ends CANCELLED, one whose lost
 * workers used its attempts FAILED). A lease that ran out on a job that runs
 * again needs no write: the record reads as SCHEDULED (see effectiveState),
 * and its next lease records the lost attempt.
 */
export async function settled(ctx: AwsStoreContext, record: JobRecord): Promise<JobRecord> {
  const now = ctx.clock.now();
  const expiry = decideExpiry(viewOf(record), now);
  if (expiry.kind === "finish") return await finishJob(ctx, record, expiry, now);
  return record;
}
