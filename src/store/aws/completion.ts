/**
 * Ending jobs, as the lifecycle decides: a worker's completion (one fenced
 * UpdateItem each, then the message is deleted; a resend of the recorded
 * result changes nothing), and a cancel (the reason is recorded; a waiting
 * job ends as CANCELLED at once, a running one when its worker hands it back
 * or its lease ends).
 *
 * @module
 */
import { countAttemptEnd } from "../attempt_records.ts";
import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { DeleteMessageBatchCommand } from "@aws-sdk/client-sqs";
import { type Job, type JobResult, JobState } from "../../../gen/job/v1/job_pb.ts";
import { isFinished } from "../../protocol/job_state.ts";
import { JobFinishedError, LeaseLostError } from "../errors.ts";
import type { BatchOutcome, CompletionInput } from "../job_store.ts";
import {
  decideCancel,
  decideCompletion,
  decideExpiry,
  type Finish,
  type Reschedule,
} from "../lifecycle.ts";
import { BATCH_CONCURRENCY, SQS_BATCH_MAX } from "./aws_limits.ts";
import { batchEntryError, isStaleReceipt } from "./aws_errors.ts";
import { chunksOf, groupInto, settleBounded } from "./batching.ts";
import { releaseDependents } from "./dependencies.ts";
import { finishJob, settled } from "./finish_job.ts";
import { jobOf, type JobRecord, jobRecordOf, viewOf } from "./job_item.ts";
import { logTopOf, repairNotice } from "./events.ts";
import { expressionOf, finishUpdate } from "./job_updates.ts";
import { fencedUpdate, rescheduleFenced } from "./lease_fence.ts";
import { deleteMessage, sendMessageDueAt, sqsBatch } from "./sqs_messages.ts";
import { type AwsStoreContext, num, queueUrlKey } from "./store_context.ts";

const S = JobState;

/** Records `result` for the job `taskToken` leases; false when it was a resend. */
export async function complete(
  ctx: AwsStoreContext,
  taskToken: string,
  result: JobResult,
): Promise<boolean> {
  const record = await completeOne(ctx, taskToken, result);
  if (record === undefined) return false;
  const queueUrl = await ctx.queueUrl(record.queue, record.priority);
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
  const urls = await ctx.queueUrls(finished.map(({ record }) => record));
  const byQueue = new Map<string, typeof finished>();
  for (const entry of finished) {
    const url = urls.get(queueUrlKey(entry.record))!;
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
 * Records one result as the lifecycle decides (decideCompletion): the job's
 * end, or a retry after its backoff. Returns the record of the job it ended
 * the lease of (whose message is still to be deleted),
 * or undefined when the call was a resend of the recorded result and
 * changed nothing.
 */
async function completeOne(
  ctx: AwsStoreContext,
  taskToken: string,
  result: JobResult,
): Promise<JobRecord | undefined> {
  const holder = ctx.tokens.verify(taskToken);
  let record = await ctx.record(holder.jobId);
  for (let decided = 1;; decided++) {
    const now = ctx.clock.now();
    const decision = decideCompletion(viewOf(record), holder, result, now);
    if (decision.kind === "resend") {
      // The completion that scheduled a retry may have been cut short before its notice was stored.
      await repairNotice(ctx, record);
      return undefined;
    }
    try {
      if (decision.kind === "finish") await finishFenced(ctx, record, decision, now);
      else await retryLater(ctx, record, decision, now);
      break;
    } catch (error) {
      if (!(error instanceof LeaseLostError) || decided > 1) throw error;
      // Refused by its condition: decided again, once, on the job as it is
      // now. A cancel since the read (the retry's fence refuses it) ends the
      // job CANCELLED. A copy of this completion sent at the same time (a
      // retry racing the original, on this server or another) may have
      // passed the fence first: this one is then its resend, as it would be
      // had it come later. A lease that ended is refused.
      const after = await ctx.getItem(record.jobId);
      if (after === undefined) throw error;
      record = jobRecordOf(after);
    }
  }
  ctx.jobWatchers.notify(record.jobId);
  return record;
}

/** Writes the job's end behind the lease fence, then tells the jobs waiting on it. */
async function finishFenced(
  ctx: AwsStoreContext,
  record: JobRecord,
  finish: Finish,
  now: number,
): Promise<void> {
  const { highest } = await logTopOf(ctx, record);
  const written = await fencedUpdate(ctx, record, now, {
    ...expressionOf(finishUpdate(record, finish, highest, now, ctx.ttlSeconds(now))),
    // Its dependents as of the write: every one that registered before it.
    ReturnValues: "ALL_NEW",
  });
  countAttemptEnd(finish);
  if (written !== undefined) await releaseDependents(ctx, jobRecordOf(written));
}

/**
 * Writes a retry behind the lease fence, then sends the job's next message,
 * delayed until its backoff ends (as far as SQS delays go; see
 * sqs_schedule.ts). The lease's own message is deleted after, by the
 * caller: had this stopped before the send, that message would come back
 * when the lease's visibility ends and stand in for it.
 */
async function retryLater(
  ctx: AwsStoreContext,
  record: JobRecord,
  reschedule: Reschedule,
  now: number,
): Promise<void> {
  await rescheduleFenced(ctx, record, reschedule, now);
  await sendMessageDueAt(
    ctx,
    await ctx.queueUrl(record.queue, record.priority),
    record,
    reschedule.notBeforeMs,
  );
}

/**
 * Cancels `jobId` as the lifecycle decides (decideCancel): a waiting job
 * ends CANCELLED at once; a running one is marked, and keeps running until
 * its worker sees the cancel.
 */
export async function cancel(ctx: AwsStoreContext, jobId: string, reason: string): Promise<Job> {
  const now = ctx.clock.now();
  // A cancelled job whose worker is gone has ended: written first, then refused below.
  let record = await settled(ctx, await ctx.record(jobId));
  let decision = decideCancel(viewOf(record), { reason }, now);
  if (decision.newReason) {
    await markCancelled(ctx, jobId, decision.cancelReason, now);
    const marked = await ctx.record(jobId);
    if (decision.kind === "finish" && marked.attempt === record.attempt) {
      // The job was waiting when decided (a lease that had run out, with no
      // cancel asked then, put it back in its queue): it ends as decided, not
      // as an expired cancelled lease, which the mark alone would make it look
      // like. A claim since then changed the attempt and takes the path below.
      // Its lease's end, as the expiry decided it, closes the attempt it ran.
      const expiry = decideExpiry(viewOf(record), now);
      const ended = expiry.kind === "reschedule"
        ? { ...decision, attemptEnd: expiry.attemptEnd }
        : decision;
      return jobOf(await finishJob(ctx, marked, ended, now), ctx.clock.now());
    }
    record = await settled(ctx, marked);
    const now2 = ctx.clock.now();
    if (isFinished(record.state)) {
      if (record.state !== S.CANCELLED) {
        throw new JobFinishedError(jobId, (JobState[record.state] ?? "").toLowerCase());
      }
      return jobOf(record, now2);
    }
    // The reason is stored now (ours, or a concurrent cancel's): decide on it.
    decision = decideCancel(viewOf(record), { reason }, now);
  }
  if (decision.kind === "finish") {
    // Its SQS message is deleted when it is next received.
    record = await finishJob(ctx, record, decision, now);
  }
  return jobOf(record, ctx.clock.now());
}

/** Records the reason of a first cancel, unless someone cancelled or finished the job meanwhile. */
async function markCancelled(
  ctx: AwsStoreContext,
  jobId: string,
  cancelReason: string,
  now: number,
): Promise<void> {
  // A failed condition means someone cancelled or finished it meanwhile:
  // the caller's re-read says which.
  await ctx.call(
    "DynamoDB UpdateItem",
    () =>
      ctx.ddb.send(
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
      ),
    { ignoreConditionFailure: true },
  );
}
