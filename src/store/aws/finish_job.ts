/**
 * Persisting the end the lifecycle decides for a job nobody runs any more:
 * cancelled while it waited or when its lease holder hands it back, or
 * whose lease ran out with a cancel asked for or its lost workers' budget
 * used up (see decideCancel, decideHandBack, decideExpiry and decideLease in
 * ../lifecycle.ts). The write is conditional on the attempt that was read,
 * so a concurrent claim or completion wins cleanly (finish_write.ts); the
 * jobs waiting on the one that ended are told after it (dependencies.ts).
 *
 * @module
 */
import { decideExpiry, type Finish } from "../lifecycle.ts";
import { releaseDependents, settleWaiting } from "./dependencies.ts";
import { writeFinish } from "./finish_write.ts";
import { isWaiting, type JobRecord, viewOf } from "./job_item.ts";
import type { AwsStoreContext } from "./store_context.ts";

/**
 * Writes `finish` to a job that is not running (any more), or whose lease
 * holder is handing it back, then tells the jobs waiting on it; answers the
 * record as it is afterwards (re-read when someone else changed it first).
 */
export async function finishJob(
  ctx: AwsStoreContext,
  record: JobRecord,
  finish: Finish,
  now: number,
): Promise<JobRecord> {
  const written = await writeFinish(ctx, record, finish, now);
  if (written.ended) await releaseDependents(ctx, written.record);
  return written.record;
}

/**
 * `record`, with what the lifecycle's expiry decides written when it ends
 * the job (a cancelled job whose lease ran out ends CANCELLED, one whose lost
 * workers used its attempts FAILED). A lease that ran out on a job that runs
 * again needs no write: the record reads as SCHEDULED (see effectiveState),
 * and its next lease records the lost attempt. A job waiting for
 * dependencies is decided again from their statuses (dependencies.ts), which
 * heals one that a crash left waiting after they ended.
 */
export async function settled(ctx: AwsStoreContext, record: JobRecord): Promise<JobRecord> {
  const now = ctx.clock.now();
  const expiry = decideExpiry(viewOf(record), now);
  if (expiry.kind === "finish") return await finishJob(ctx, record, expiry, now);
  if (isWaiting(record)) return await settleWaiting(ctx, record);
  return record;
}
