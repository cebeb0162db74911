/**
 * Ending jobs: a worker's completion (one fenced UpdateItem each, then the
 * message is deleted; a resend of the recorded result changes nothing), and
 * a cancel (the reason is recorded; a waiting job ends as CANCELLED at once,
 * a running one when its worker hands it back or its lease ends).
 *
 * @module
 */
import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { DeleteMessageBatchCommand } from "@aws-sdk/client-sqs";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Job, type JobResult, JobResultSchema, JobState } from "../../../gen/job/v1/job_pb.ts";
import { finishedStateFor, isFinished } from "../../protocol/job_state.ts";
import { isCompletionResend } from "../batch.ts";
import { JobFinishedError, JobMismatchError, LeaseLostError } from "../errors.ts";
import { type BatchOutcome, type CompletionInput, DEFAULT_CANCEL_REASON } from "../job_store.ts";
import { BATCH_CONCURRENCY, SQS_BATCH_MAX } from "./aws_limits.ts";
import { asStoreError, batchEntryError, isConditionFailed, isStaleReceipt } from "./aws_errors.ts";
import { chunksOf, groupInto, settleBounded } from "./batching.ts";
import { finishCancelled } from "./finish_cancelled.ts";
import { effectiveState, jobOf, type JobRecord, jobRecordOf } from "./job_item.ts";
import { fencedUpdate, holding } from "./lease_fence.ts";
import { deleteMessage, sqsBatch } from "./sqs_messages.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

const S = JobState;

/** Records `result` for the job `taskToken` leases; false when it was a resend. */
export async function complete(
  ctx: AwsStoreContext,
  taskToken: string,
  result: JobResult,
): Promise<boolean> {
  const record = await completeOne(ctx, taskToken, result);
  if (record === undefined) return false;
  const queueUrl = await ctx.queueUrl(record.queue);
  await deleteMessage(ctx, queueUrl, record.receiptHandle);
  return true;
}

/**
 * Completes each item as {@link complete} does. Each completion stays its
 * own fenced UpdateItem: the fence is a condition, and BatchWriteItem
 * carries none. The finished jobs' messages then go in DeleteMessageBatch
 * calls.
 */
export async function completeBatch(
  ctx: AwsStoreContext,
  items: readonly CompletionInput[],
): Promise<BatchOutcome<boolean>[]> {
  const completed = await settleBounded(
    items,
    BATCH_CONCURRENCY,
    (item) => completeOne(ctx, item.taskToken, item.result),
  );
  const outcomes: BatchOutcome<boolean>[] = completed.map((outcome) =>
    outcome.ok ? { ok: true, value: outcome.value !== undefined } : outcome
  );
  // A resend (undefined) finds its message deleted already.
  const finished = completed.flatMap((outcome, index) =>
    outcome.ok && outcome.value !== undefined && outcome.value.receiptHandle !== ""
      ? [{ index, record: outcome.value }]
      : []
  );
  const urls = await ctx.queueUrls(finished.map(({ record }) => record.queue));
  const byQueue = new Map<string, typeof finished>();
  for (const entry of finished) {
    const url = urls.get(entry.record.queue)!;
    if (url.ok) groupInto(byQueue, url.value, entry);
    else outcomes[entry.index] = url;
  }
  const deletes = [...byQueue].flatMap(([queueUrl, entries]) =>
    chunksOf(entries, SQS_BATCH_MAX).map((group) => ({ queueUrl, group }))
  );
  await settleBounded(deletes, BATCH_CONCURRENCY, async ({ queueUrl, group }) => {
    const failed = await sqsBatch(
      ctx,
      "SQS DeleteMessageBatch",
      group.map(({ index, record }) => ({
        Id: String(index),
        ReceiptHandle: record.receiptHandle,
      })),
      (entries) =>
        ctx.sqs.send(
          new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }),
          ctx.abort(),
        ),
      // As in deleteMessage: a stale handle's message is deleted at its
      // next receipt (its job is finished).
      (failure) => isStaleReceipt(batchEntryError(failure)),
    );
    for (const [id, error] of failed) outcomes[Number(id)] = { ok: false, error };
  });
  return outcomes;
}

/**
 * Records one result; returns the record of the job it finished (whose
 * message is still to be deleted), or undefined when the call was a
 * resend of the recorded result and changed nothing.
 */
async function completeOne(
  ctx: AwsStoreContext,
  taskToken: string,
  result: JobResult,
): Promise<JobRecord | undefined> {
  const now = ctx.clock.now();
  const claims = ctx.tokens.verify(taskToken);
  const current = await ctx.record(claims.jobId);
  if (isResendOf(current, claims.attempt, result)) return undefined;
  const record = holding(current, claims.attempt, now);
  if (result.jobId !== record.jobId) throw new JobMismatchError(record.jobId, result.jobId);
  const stored = create(JobResultSchema, result);
  stored.completedAt ??= timestampFromMs(now);
  const state = record.cancelReason !== "" ? S.CANCELLED : finishedStateFor(result.success);
  try {
    await fencedUpdate(ctx, record, now, {
      UpdateExpression:
        "SET #state = :final, #result = :result, lease_expires_at = :zero, updated_at = :now, #ttl = :ttl",
      ExpressionAttributeNames: { "#result": "result", "#ttl": "ttl" },
      ExpressionAttributeValues: {
        ":final": num(state),
        ":result": { B: toBinary(JobResultSchema, stored) },
        ":zero": num(0),
        ":ttl": num(ctx.ttlSeconds(now)),
      },
    });
  } catch (error) {
    // A copy of this completion sent at the same time (a retry racing the
    // original, on this server or another) may have passed the fence
    // first: this one is then its resend, as it would be had it come later.
    if (error instanceof LeaseLostError) {
      const after = await ctx.getItem(record.jobId);
      if (after !== undefined && isResendOf(jobRecordOf(after), claims.attempt, result)) {
        return undefined;
      }
    }
    throw error;
  }
  ctx.jobWatchers.notify(record.jobId);
  return record;
}

/**
 * Whether completing `attempt` with `result` repeats the completion that
 * finished the job (see isCompletionResend).
 */
function isResendOf(record: JobRecord, attempt: number, result: JobResult): boolean {
  return isFinished(record.state) && record.attempt === attempt &&
    isCompletionResend(
      record.result === undefined ? undefined : fromBinary(JobResultSchema, record.result),
      result,
    );
}

/**
 * Cancels `jobId` with `reason` (or the default one): ends it at once when
 * it waits; a running job keeps running until its worker sees the cancel.
 */
export async function cancel(ctx: AwsStoreContext, jobId: string, reason: string): Promise<Job> {
  const now = ctx.clock.now();
  let record = await ctx.record(jobId);
  const state = effectiveState(record, now);
  if (isFinished(state)) {
    throw new JobFinishedError(jobId, (JobState[state] ?? "").toLowerCase());
  }
  if (record.cancelReason === "") {
    const cancelReason = reason === "" ? DEFAULT_CANCEL_REASON : reason;
    try {
      await ctx.ddb.send(
        new UpdateItemCommand({
          TableName: ctx.jobsTable,
          Key: { job_id: { S: jobId } },
          UpdateExpression: "SET cancel_reason = :reason, updated_at = :now",
          ConditionExpression:
            "attribute_not_exists(cancel_reason) AND #state IN (:scheduled, :running)",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: {
            ":reason": { S: cancelReason },
            ":now": num(now),
            ":scheduled": num(S.SCHEDULED),
            ":running": num(S.RUNNING),
          },
        }),
        ctx.abort(),
      );
    } catch (error) {
      // Someone cancelled or finished it meanwhile: the re-read below says which.
      if (!isConditionFailed(error)) throw asStoreError("DynamoDB UpdateItem", error);
    }
    record = await ctx.record(jobId);
    const now2 = ctx.clock.now();
    if (isFinished(effectiveState(record, now2))) {
      if (record.state !== S.CANCELLED) {
        throw new JobFinishedError(jobId, (JobState[record.state] ?? "").toLowerCase());
      }
      return jobOf(record, now2);
    }
  }
  if (effectiveState(record, now) === S.SCHEDULED) {
    // Its SQS message is deleted when it is next received.
    record = await finishCancelled(ctx, record, now, "");
  }
  return jobOf(record, ctx.clock.now());
}
