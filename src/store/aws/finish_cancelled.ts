/**
 * Ending a cancelled job as CANCELLED once nobody runs it: at once when it
 * is waiting, when its lease holder hands it back, or when its lease ran out
 * (its worker stopped before finishing). The write is conditional on the
 * attempt that was read, so a concurrent claim or completion wins cleanly.
 *
 * @module
 */
import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { JobResultSchema, JobState } from "../../../gen/job/v1/job_pb.ts";
import { asStoreError, isConditionFailed } from "./aws_errors.ts";
import { type JobRecord, jobRecordOf, leaseExpired } from "./job_item.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

const S = JobState;

/** What a cancelled job's result adds when its worker stopped without finishing it. */
export const WORKER_GONE = " (its worker stopped before finishing)";

/** Ends a job that is not running (any more) and has a cancel reason as CANCELLED. */
export async function finishCancelled(
  ctx: AwsStoreContext,
  record: JobRecord,
  now: number,
  detail: string,
): Promise<JobRecord> {
  const handBack = record.state === S.RUNNING && !leaseExpired(record, now);
  const result = create(JobResultSchema, {
    jobId: record.jobId,
    success: false,
    errorMessage: `cancelled: ${record.cancelReason}${detail}`,
    completedAt: timestampFromMs(now),
  });
  try {
    const out = await ctx.ddb.send(
      new UpdateItemCommand({
        TableName: ctx.jobsTable,
        Key: { job_id: { S: record.jobId } },
        UpdateExpression:
          "SET #state = :cancelled, #result = :result, lease_expires_at = :zero, updated_at = :now, #ttl = :ttl",
        // A lease holder handing a cancelled job back ends it while still holding it.
        ConditionExpression: handBack
          ? "attempt = :attempt AND #state IN (:scheduled, :running)"
          : "attempt = :attempt AND (#state = :scheduled OR (#state = :running AND lease_expires_at <= :now))",
        ExpressionAttributeNames: { "#state": "state", "#result": "result", "#ttl": "ttl" },
        ExpressionAttributeValues: {
          ":cancelled": num(S.CANCELLED),
          ":scheduled": num(S.SCHEDULED),
          ":running": num(S.RUNNING),
          ":result": { B: toBinary(JobResultSchema, result) },
          ":zero": num(0),
          ":now": num(now),
          ":ttl": num(ctx.ttlSeconds(now)),
          ":attempt": num(record.attempt),
        },
        ReturnValues: "ALL_NEW",
      }),
      ctx.abort(),
    );
    ctx.jobWatchers.notify(record.jobId);
    return jobRecordOf(out.Attributes!);
  } catch (error) {
    if (!isConditionFailed(error)) throw asStoreError("DynamoDB UpdateItem", error);
    return await ctx.record(record.jobId);
  }
}

/**
 * `record`, with a cancelled job whose lease ran out ended as CANCELLED
 * (an expired lease alone needs no write: it reads as SCHEDULED).
 */
export async function settled(ctx: AwsStoreContext, record: JobRecord): Promise<JobRecord> {
  const now = ctx.clock.now();
  if (record.cancelReason !== "" && leaseExpired(record, now)) {
    return await finishCancelled(ctx, record, now, WORKER_GONE);
  }
  return record;
}
