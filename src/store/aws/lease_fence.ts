/**
 * The lease fence on DynamoDB: a lease write (extend, hand back, publish,
 * complete) is made only while the token's attempt still holds the job with
 * its lease unexpired. The lifecycle checks that on the record read
 * (checkLease in ../lifecycle.ts); the write carries the same fence as its
 * condition, so a lease that ends between the read and the write still
 * changes nothing.
 *
 * @module
 */
import { countAttemptEnd } from "../attempt_records.ts";
import { ConditionalCheckFailedException, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { JobState } from "../../../gen/job/v1/job_pb.ts";
import { LeaseLostError } from "../errors.ts";
import type { LeaseUpdate } from "../job_store.ts";
import { decideExtend, type Release, type Reschedule } from "../lifecycle.ts";
import type { TaskTokenClaims } from "../task_token.ts";
import { SQS_MAX_VISIBILITY_SECONDS } from "./aws_limits.ts";
import { asStoreError, isConditionFailed } from "./aws_errors.ts";
import { finishJob } from "./finish_job.ts";
import { logTopOf, putNotice } from "./events.ts";
import { type Item, type JobRecord, viewOf } from "./job_item.ts";
import { expressionOf, rescheduleUpdate } from "./job_updates.ts";
import { changeVisibility, deleteMessage, replaceMessage } from "./sqs_messages.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

const S = JobState;

/** A write made behind the fence. */
export interface FencedUpdate {
  UpdateExpression: string;
  /** More that must hold, ANDed to the fence. */
  ConditionExtra?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues: Item;
  /** "ALL_NEW": answer the item as the write left it. */
  ReturnValues?: "ALL_NEW";
}

/**
 * Extends the lease of `taskToken` by `visibilityTimeoutMs`, or hands the
 * job back when it is 0 or less, as the lifecycle decides (decideExtend).
 */
export async function updateLease(
  ctx: AwsStoreContext,
  taskToken: string,
  queue: string,
  visibilityTimeoutMs: number,
): Promise<LeaseUpdate> {
  const now = ctx.clock.now();
  const { record, holder } = await leasedRecord(ctx, taskToken);
  const decision = decideExtend(viewOf(record), holder, { queue, visibilityTimeoutMs }, now);
  const queueUrl = await ctx.queueUrl(record.queue, record.priority);
  if (decision.kind === "handBack") {
    try {
      await handBack(ctx, record, decision.release, queueUrl, now);
    } catch (error) {
      if (!(error instanceof LeaseLostError)) throw error;
      // The reschedule was refused: a cancel since the read (or the lease
      // ended). Decided again on the job as it is now: CANCELLED (or refused).
      const again = await ctx.record(record.jobId);
      const now2 = ctx.clock.now();
      const redecided = decideExtend(viewOf(again), holder, { queue, visibilityTimeoutMs }, now2);
      if (redecided.kind !== "handBack") throw error;
      await handBack(ctx, again, redecided.release, queueUrl, now2);
      return { cancelled: redecided.cancelled };
    }
    return { cancelled: decision.cancelled };
  }
  await fencedUpdate(ctx, record, now, {
    UpdateExpression: "SET lease_expires_at = :until",
    ExpressionAttributeValues: { ":until": num(decision.leaseExpiresAtMs) },
  });
  // Past SQS's 12-hour cap the message comes back early; its receipt then
  // finds the lease held and puts it back in flight (see claim in receive.ts).
  await changeVisibility(
    ctx,
    queueUrl,
    record.receiptHandle,
    Math.min(SQS_MAX_VISIBILITY_SECONDS, Math.ceil(visibilityTimeoutMs / 1000)),
  );
  return { cancelled: decision.cancelled };
}

/**
 * Persists a hand-back's `release`: the job's end (its message deleted), or
 * the wait for its next attempt, which gets a fresh message (replaceMessage),
 * so hand-backs never add up on one message's receive count.
 */
async function handBack(
  ctx: AwsStoreContext,
  record: JobRecord,
  release: Release,
  queueUrl: string,
  now: number,
): Promise<void> {
  if (release.kind === "finish") {
    await finishJob(ctx, record, release, now);
    await deleteMessage(ctx, queueUrl, record.receiptHandle);
  } else {
    await rescheduleFenced(ctx, record, release, now);
    await replaceMessage(ctx, queueUrl, record.receiptHandle, record);
  }
}

/**
 * The record of the job `taskToken` names, and the lease holder the token
 * speaks for; whether it still holds the lease is the lifecycle's to say.
 * @throws {InvalidTaskTokenError} for a token this store did not sign.
 */
export async function leasedRecord(
  ctx: AwsStoreContext,
  taskToken: string,
): Promise<{ record: JobRecord; holder: TaskTokenClaims }> {
  const holder = ctx.tokens.verify(taskToken);
  return { record: await ctx.record(holder.jobId), holder };
}

/**
 * Writes `reschedule` (the lease holder's attempt ends, the job waits for
 * its next) behind the fence, then stores its ATTEMPT_END notice, if any.
 * The notice's number is the one after the attempt's highest: the write is
 * refused if the attempt reserved more meanwhile (a publish racing its own
 * completion), so no late event can take it. It is refused too once a
 * cancel was asked since the record was read: the lifecycle, deciding
 * again, ends the job CANCELLED rather than have it wait for an attempt.
 * A refusal is LeaseLostError.
 */
export async function rescheduleFenced(
  ctx: AwsStoreContext,
  record: JobRecord,
  reschedule: Reschedule,
  now: number,
): Promise<void> {
  const { highest, top } = await logTopOf(ctx, record);
  const write = rescheduleUpdate(record, reschedule, highest, now);
  const update = expressionOf(write.update);
  await fencedUpdate(ctx, record, now, {
    ...update,
    ConditionExtra:
      "(attribute_not_exists(reserved_sequence) OR reserved_sequence <= :highest) AND attribute_not_exists(cancel_reason)",
    ExpressionAttributeValues: { ...update.ExpressionAttributeValues, ":highest": num(highest) },
  });
  countAttemptEnd(reschedule);
  if (write.notice !== undefined) await putNotice(ctx, record.jobId, write.notice, top);
  ctx.jobWatchers.notify(record.jobId);
}

/**
 * Applies `update` only while `record`'s attempt still holds an unexpired
 * lease (the fence); a refused condition is LeaseLostError. Answers the
 * item as written when `update` asks for it.
 */
export async function fencedUpdate(
  ctx: AwsStoreContext,
  record: JobRecord,
  now: number,
  update: FencedUpdate,
): Promise<Item | undefined> {
  try {
    const out = await ctx.ddb.send(
      new UpdateItemCommand({
        TableName: ctx.jobsTable,
        Key: { job_id: { S: record.jobId } },
        UpdateExpression: update.UpdateExpression,
        ConditionExpression:
          "attempt = :attempt AND #state = :runningNow AND lease_expires_at > :now" +
          (update.ConditionExtra === undefined ? "" : ` AND ${update.ConditionExtra}`),
        ExpressionAttributeNames: { "#state": "state", ...update.ExpressionAttributeNames },
        ExpressionAttributeValues: {
          ...update.ExpressionAttributeValues,
          ":attempt": num(record.attempt),
          ":runningNow": num(S.RUNNING),
          ":now": num(now),
        },
        ...(update.ReturnValues === undefined ? {} : { ReturnValues: update.ReturnValues }),
      }),
      ctx.abort(),
    );
    return out.Attributes;
  } catch (error) {
    if (isConditionFailed(error) || error instanceof ConditionalCheckFailedException) {
      throw new LeaseLostError(record.jobId, "the lease ended while the request was made");
    }
    throw asStoreError("DynamoDB UpdateItem", error);
  }
}
