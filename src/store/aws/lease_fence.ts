/**
 * The lease fence: a lease write (extend, hand back, publish, complete) is
 * made only while the token's attempt still holds the job with its lease
 * unexpired, checked on the record read and again as the write's condition,
 * so a token from an older attempt changes nothing.
 *
 * @module
 */
import { ConditionalCheckFailedException, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { JobState } from "../../../gen/job/v1/job_pb.ts";
import { isFinished } from "../../protocol/job_state.ts";
import { LeaseLostError, QueueMismatchError } from "../errors.ts";
import type { LeaseUpdate } from "../job_store.ts";
import { SQS_MAX_VISIBILITY_SECONDS } from "./aws_limits.ts";
import { asStoreError, isConditionFailed } from "./aws_errors.ts";
import { finishCancelled } from "./finish_cancelled.ts";
import { effectiveState, type Item, type JobRecord } from "./job_item.ts";
import { changeVisibility, deleteMessage } from "./sqs_messages.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

const S = JobState;

/** A write made behind the fence. */
export interface FencedUpdate {
  UpdateExpression: string;
  /** More that must hold, ANDed to the fence. */
  ConditionExtra?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues: Item;
}

/**
 * Extends the lease of `taskToken` by `visibilityTimeoutMs`, or hands the
 * job back when it is 0 or less (ended as CANCELLED when it was cancelled).
 */
export async function updateLease(
  ctx: AwsStoreContext,
  taskToken: string,
  queue: string,
  visibilityTimeoutMs: number,
): Promise<LeaseUpdate> {
  const now = ctx.clock.now();
  const record = await leasedRecord(ctx, taskToken, now);
  if (record.queue !== queue) throw new QueueMismatchError(record.queue, queue);
  const cancelled = record.cancelReason !== "";
  const queueUrl = await ctx.queueUrl(record.queue);
  if (visibilityTimeoutMs <= 0) {
    if (cancelled) {
      await finishCancelled(ctx, record, now, "");
      await deleteMessage(ctx, queueUrl, record.receiptHandle);
      return { cancelled };
    }
    await fencedUpdate(ctx, record, now, {
      UpdateExpression: "SET #state = :scheduled, lease_expires_at = :zero, updated_at = :now",
      ExpressionAttributeValues: { ":scheduled": num(S.SCHEDULED), ":zero": num(0) },
    });
    await changeVisibility(ctx, queueUrl, record.receiptHandle, 0);
    return { cancelled };
  }
  await fencedUpdate(ctx, record, now, {
    UpdateExpression: "SET lease_expires_at = :until",
    ExpressionAttributeValues: { ":until": num(now + visibilityTimeoutMs) },
  });
  // Past SQS's 12-hour cap the message comes back early; its receipt then
  // finds the lease held and puts it back in flight (see claim in receive.ts).
  await changeVisibility(
    ctx,
    queueUrl,
    record.receiptHandle,
    Math.min(SQS_MAX_VISIBILITY_SECONDS, Math.ceil(visibilityTimeoutMs / 1000)),
  );
  return { cancelled };
}

/**
 * The record the token leases, while its attempt holds the job and the
 * lease lasts.
 * @throws {LeaseLostError} otherwise.
 */
export async function leasedRecord(
  ctx: AwsStoreContext,
  taskToken: string,
  now: number,
): Promise<JobRecord> {
  const claims = ctx.tokens.verify(taskToken);
  return holding(await ctx.record(claims.jobId), claims.attempt, now);
}

/**
 * `record`, while `attempt` holds the job and its lease lasts.
 * @throws {LeaseLostError} otherwise.
 */
export function holding(record: JobRecord, attempt: number, now: number): JobRecord {
  if (record.attempt !== attempt) {
    throw new LeaseLostError(
      record.jobId,
      `attempt ${attempt} was superseded by attempt ${record.attempt}`,
    );
  }
  const state = effectiveState(record, now);
  if (state !== S.RUNNING) {
    throw new LeaseLostError(
      record.jobId,
      isFinished(state)
        ? "the job has finished"
        : "the lease expired or was handed back, and the job was scheduled again",
    );
  }
  return record;
}

/**
 * Applies `update` only while `record`'s attempt still holds an unexpired
 * lease (the fence); a refused condition is LeaseLostError.
 */
export async function fencedUpdate(
  ctx: AwsStoreContext,
  record: JobRecord,
  now: number,
  update: FencedUpdate,
): Promise<void> {
  try {
    await ctx.ddb.send(
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
      }),
      ctx.abort(),
    );
  } catch (error) {
    if (isConditionFailed(error) || error instanceof ConditionalCheckFailedException) {
      throw new LeaseLostError(record.jobId, "the lease ended while the request was made");
    }
    throw asStoreError("DynamoDB UpdateItem", error);
  }
}
