/**
 * Persisting the end the lifecycle decides for a cancelled job nobody runs
 * any more: at once when it waits, when its lease holder hands it back, or
 * when its lease ran out (see decideCancel, decideHandBack, decideExpiry and
 * decideLease in ../lifecycle.ts). The write is conditional on the attempt
 * that was read, so a concurrent claim or completion wins cleanly.
 *
 * @module
 */
import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { toBinary } from "@bufbuild/protobuf";
import { JobResultSchema, JobState } from "../../../gen/job/v1/job_pb.ts";
import { decideExpiry, type Finish, leaseExpired } from "../lifecycle.ts";
import { type JobRecord, jobRecordOf, viewOf } from "./job_item.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

const S = JobState;

/**
 * Writes `finish` (a cancelled job's end) to a job that is not running (any
 * more), or whose lease holder is handing it back; answers the record as it
 * is afterwards (re-read when someone else changed it first).
 */
export async function finishCancelled(
  ctx: AwsStoreContext,
  record: JobRecord,
  finish: Finish,
  now: number,
): Promise<JobRecord> {
  const handBack = record.state === S.RUNNING && !leaseExpired(viewOf(record), now);
  const out = await ctx.call(
    "DynamoDB UpdateItem",
    () =>
      ctx.ddb.send(
        new UpdateItemCommand({
          TableName: ctx.jobsTable,
          Key: { job_id: { S: record.jobId } },
          UpdateExpression:
            "SET #state = :finished, #result = :result, lease_expires_at = :zero, updated_at = :now, #ttl = :ttl",
          // A lease holder handing a cancelled job back ends it while still holding it.
          ConditionExpression: handBack
            ? "attempt = :attempt AND #state IN (:scheduled, :running)"
            : "attempt = :attempt AND (#state = :scheduled OR (#state = :running AND lease_expires_at <= :now))",
          ExpressionAttributeNames: { "#state": "state", "#result": "result", "#ttl": "ttl" },
          ExpressionAttributeValues: {
            ":finished": num(finish.state),
            ":scheduled": num(S.SCHEDULED),
            ":running": num(S.RUNNING),
            ":result": { B: toBinary(JobResultSchema, finish.result) },
            ":zero": num(0),
            ":now": num(now),
            ":ttl": num(ctx.ttlSeconds(now)),
            ":attempt": num(record.attempt),
          },
          ReturnValues: "ALL_NEW",
        }),
        ctx.abort(),
      ),
    { ignoreConditionFailure: true },
  );
  // A failed condition: someone else changed the job first; it is as they left it.
  if (out === undefined) return await ctx.record(record.jobId);
  ctx.jobWatchers.notify(record.jobId);
  return jobRecordOf(out.Attributes!);
}

/**
 * `record`, with what the lifecycle's expiry decides written when it ends
 * the job (a cancelled job whose lease ran out ends CANCELLED). A lease that
 * ran out on a job nobody cancelled needs no write: the record reads as
 * SCHEDULED (see effectiveState).
 */
export async function settled(ctx: AwsStoreContext, record: JobRecord): Promise<JobRecord> {
  const now = ctx.clock.now();
  const expiry = decideExpiry(viewOf(record), now);
  if (expiry.kind === "finish") return await finishCancelled(ctx, record, expiry, now);
  return record;
}
