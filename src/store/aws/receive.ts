/**
 * Dequeue: receive SQS messages and claim their jobs. A message is only a
 * hint: a receive claims its job with a conditional update on the job's
 * attempt, and a message for a finished, unknown or already leased job is
 * deleted (or, for the lease's own message, left in flight). A message for a
 * job still waiting out a retry's backoff is put back in flight until it is
 * due (see sqs_schedule.ts). The receipt of a message whose lease ran out
 * records the lost attempt (a conditional write) and puts a fresh message in
 * its place, which the next attempt is leased through: each attempt has a
 * message of its own, so SQS's receive count never adds up lost attempts.
 *
 * @module
 */
import { countAttemptEnd } from "../attempt_records.ts";
import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import type { Message } from "@aws-sdk/client-sqs";
import { JobState } from "../../../gen/job/v1/job_pb.ts";
import { backoffDelayMs, type BackoffPolicy, retry } from "../../retry.ts";
import type { DequeueOptions, LeasedJob } from "../job_store.ts";
import { decideLease, type Lease, type Reschedule } from "../lifecycle.ts";
import { SQS_MAX_VISIBILITY_SECONDS, YOUNG_MESSAGE_MS } from "./aws_limits.ts";
import { asStoreError, isConditionFailed } from "./aws_errors.ts";
import { logTopOf, putNotice, repairNotice } from "./events.ts";
import { settleWaiting } from "./dependencies.ts";
import { finishJob } from "./finish_job.ts";
import {
  attemptOfMessage,
  isWaiting,
  type Item,
  jobIdOfMessage,
  jobOf,
  type JobRecord,
  jobRecordOf,
  viewOf,
} from "./job_item.ts";
import { expressionOf, leaseUpdate, rescheduleUpdate } from "./job_updates.ts";
import { changeVisibility, deleteMessage, replaceMessage } from "./sqs_messages.ts";
import { visibilitySecondsUntil } from "./sqs_schedule.ts";
import { type AwsStoreContext, num } from "./store_context.ts";
import { BandReceiver } from "./sqs_receive.ts";

/** SQS's longest long poll. */
const SQS_MAX_WAIT_SECONDS = 20;
/** SQS's most messages per receive. */
const SQS_MAX_MESSAGES = 10;
/**
 * How old a message for a job not yet due may get before it is replaced:
 * below SQS's default retention (4 days; airunner's queues keep 14), so a
 * job delayed up to 366 days keeps a message, received about twice a day.
 */
export const MESSAGE_REFRESH_AGE_MS = 3 * 86_400_000;

const S = JobState;

/** Leases up to `options.maxJobs` jobs of `queue`, waiting for them as long as allowed. */
export async function dequeue(
  ctx: AwsStoreContext,
  queue: string,
  options: DequeueOptions,
): Promise<LeasedJob[]> {
  const { maxJobs, visibilityTimeoutMs } = options;
  const deadline = options.maxWaitMs === undefined
    ? undefined
    : ctx.clock.now() + options.maxWaitMs;
  const visibilitySeconds = Math.min(
    SQS_MAX_VISIBILITY_SECONDS,
    Math.max(1, Math.ceil(visibilityTimeoutMs / 1000)),
  );
  const receiver = new BandReceiver(
    ctx,
    queue,
    Math.min(maxJobs, SQS_MAX_MESSAGES),
    visibilitySeconds,
  );
  try {
    return await dequeueWith(ctx, queue, receiver, { ...options, deadline });
  } finally {
    // Long polls still out when the dequeue ends: what they bring goes back at once.
    receiver.close();
  }
}

async function dequeueWith(
  ctx: AwsStoreContext,
  queue: string,
  receiver: BandReceiver,
  options: DequeueOptions & { deadline: number | undefined },
): Promise<LeasedJob[]> {
  const { maxJobs, visibilityTimeoutMs, signal, deadline } = options;
  while (!ctx.closed && !signal.aborted) {
    const remainingMs = deadline === undefined ? Infinity : deadline - ctx.clock.now();
    if (remainingMs <= 0) break;
    const waitSeconds = Math.min(SQS_MAX_WAIT_SECONDS, Math.ceil(remainingMs / 1000));
    const received = await receiver.round(await ctx.bandUrls(queue), waitSeconds, signal);
    const leased: LeasedJob[] = [];
    let failure: unknown;
    for (const { url, message } of received) {
      if (leased.length >= maxJobs) {
        // More than asked for (several bands answered at once): back to the queue now.
        await changeVisibility(ctx, url, message.ReceiptHandle ?? "", 0).catch(() => {});
        continue;
      }
      try {
        const claimed = await claim(ctx, queue, url, message, {
          visibilityTimeoutMs,
          worker: options.workerName ?? "",
        });
        if (claimed !== undefined) leased.push(claimed);
      } catch (error) {
        // Keep the leases already taken; this message comes back when its visibility ends.
        failure ??= error;
      }
    }
    if (leased.length > 0) return leased;
    if (failure !== undefined) throw failure;
  }
  return [];
}

/**
 * Turns a received message into a lease on its job, or disposes of it:
 * deleted when its job is finished, unknown or already held through
 * another message; back in flight when it is the lease's own message.
 */
async function claim(
  ctx: AwsStoreContext,
  queue: string,
  queueUrl: string,
  message: Message,
  options: { visibilityTimeoutMs: number; worker: string },
): Promise<LeasedJob | undefined> {
  const { visibilityTimeoutMs, worker } = options;
  const handle = message.ReceiptHandle ?? "";
  const messageId = message.MessageId ?? "";
  const jobId = jobIdOfMessage(message.Body);
  if (jobId === undefined) {
    await deleteMessage(ctx, queueUrl, handle);
    return undefined;
  }
  const item = await itemSoon(ctx, jobId);
  const now = ctx.clock.now();
  if (item === undefined) {
    const sentMs = Number(message.Attributes?.SentTimestamp ?? "0");
    if (now - sentMs < YOUNG_MESSAGE_MS) {
      // Its enqueue may still be writing the job: look again shortly.
      await changeVisibility(ctx, queueUrl, handle, 1);
    } else {
      await deleteMessage(ctx, queueUrl, handle);
    }
    return undefined;
  }
  let record = jobRecordOf(item);
  if (record.queue !== queue) {
    await deleteMessage(ctx, queueUrl, handle);
    return undefined;
  }
  if (isWaiting(record)) {
    // Sent by a release that has not removed waiting_for yet, or was cut
    // short in between: decided again here, and leased through this message.
    record = await settleWaiting(ctx, record, { send: false });
    if (isWaiting(record)) {
      await deleteMessage(ctx, queueUrl, handle);
      return undefined;
    }
  }
  const decision = decideLease(viewOf(record), { visibilityTimeoutMs }, now);
  switch (decision.kind) {
    case "skip":
      if (decision.reason === "not_due") {
        const sentMs = Number(message.Attributes?.SentTimestamp ?? "0");
        if (sentMs > 0 && now - sentMs > MESSAGE_REFRESH_AGE_MS) {
          // A long wait (a start months ahead): SQS drops a message some
          // days after its send however often it is put back, so this one
          // makes way for a fresh one before it goes.
          await replaceMessage(ctx, queueUrl, handle, record);
        } else {
          // Early (a wait past SQS's longest delay, or a duplicate): back in
          // flight until the job is due, never deleted, never leased.
          await changeVisibility(
            ctx,
            queueUrl,
            handle,
            visibilitySecondsUntil(record.notBeforeMs, now),
          );
        }
      } else if (isRedriveInFlight(record, message, now)) {
        await changeVisibility(ctx, queueUrl, handle, 1);
      } else if (
        decision.reason === "running" && messageId !== "" && messageId === record.messageId
      ) {
        // The lease's own message, back early (SQS caps visibility at 12 h):
        // keep it in flight until the lease ends, under its new handle.
        await adoptReceipt(ctx, record, handle);
        const remaining = Math.ceil((record.leaseExpiresAtMs - now) / 1000);
        await changeVisibility(
          ctx,
          queueUrl,
          handle,
          Math.min(SQS_MAX_VISIBILITY_SECONDS, Math.max(1, remaining)),
        );
      } else {
        // Finished, or held through another message.
        await deleteMessage(ctx, queueUrl, handle);
      }
      return undefined;
    case "finish":
      // Cancelled while it waited or after its worker stopped, or its lost workers used its attempts.
      await finishJob(ctx, record, decision, now);
      await deleteMessage(ctx, queueUrl, handle);
      return undefined;
    case "lease":
      if (decision.lost !== undefined) {
        await recordLost(ctx, record, decision.lost, { queueUrl, handle, now });
        return undefined;
      }
      return await takeLease(ctx, record, decision, { queue, handle, messageId, worker, now });
  }
}

/**
 * Whether `message` may be the one a redrive of this FAILED job sent before
 * writing it SCHEDULED (redrive.ts): young, and naming the attempt the job
 * failed on, which no other message does (an enqueue's names 0, a retry's
 * the attempt before the one it schedules). It is looked at again shortly
 * rather than deleted.
 */
function isRedriveInFlight(record: JobRecord, message: Message, now: number): boolean {
  const sentMs = Number(message.Attributes?.SentTimestamp ?? "0");
  return record.state === S.FAILED && record.attempt > 0 &&
    attemptOfMessage(message.Body) === record.attempt && now - sentMs < YOUNG_MESSAGE_MS;
}

/**
 * Starts the attempt `lease` decides on `record` (ending the lost one it
 * may end), conditional on nobody having done so since it was read;
 * undefined when somebody did (or cancelled it).
 */
async function takeLease(
  ctx: AwsStoreContext,
  record: JobRecord,
  lease: Lease,
  message: { queue: string; handle: string; messageId: string; worker: string; now: number },
): Promise<LeasedJob | undefined> {
  const { queue, handle, messageId, worker, now } = message;
  const jobId = record.jobId;
  const log = await logTopOf(ctx, record);
  // A retry's notice is stored before the attempt after it numbers its events.
  await repairNotice(ctx, record, log);
  const write = leaseUpdate(
    record,
    lease,
    log.highest,
    { worker, receiptHandle: handle, messageId },
    now,
  );
  const update = expressionOf(write.update);
  let out;
  try {
    out = await ctx.ddb.send(
      new UpdateItemCommand({
        TableName: ctx.jobsTable,
        Key: { job_id: { S: jobId } },
        ...update,
        ConditionExpression:
          "attempt = :seen AND attribute_not_exists(cancel_reason) AND attribute_not_exists(waiting_for) AND (#state = :scheduled OR (#state = :running AND lease_expires_at <= :now)) AND (#state = :running OR attribute_not_exists(not_before_ms) OR not_before_ms <= :now)",
        ExpressionAttributeNames: { ...update.ExpressionAttributeNames, "#state": "state" },
        ExpressionAttributeValues: {
          ...update.ExpressionAttributeValues,
          ":running": num(S.RUNNING),
          ":scheduled": num(S.SCHEDULED),
          ":seen": num(record.attempt),
          ":now": num(now),
        },
        ReturnValues: "ALL_NEW",
      }),
      ctx.abort(),
    );
  } catch (error) {
    // Another server claimed it first (through a duplicate message), or it
    // was cancelled meanwhile: this message is handled at its next receipt.
    if (isConditionFailed(error)) return undefined;
    throw asStoreError("DynamoDB UpdateItem", error);
  }
  if (lease.lost !== undefined) countAttemptEnd(lease.lost);
  if (write.notice !== undefined) await putNotice(ctx, jobId, write.notice, log.top);
  const leased = jobRecordOf(out.Attributes!);
  return {
    job: jobOf(leased, now),
    taskToken: ctx.tokens.sign({ jobId, queue, attempt: leased.attempt }),
  };
}

/**
 * Ends the attempt whose lease ran out as `lost` says (the job waits
 * SCHEDULED for its next), conditional on nobody having done so since it was
 * read, then replaces the lease's message (`handle`) with a fresh one, which
 * the next attempt is leased through (by this dequeue or another): as a
 * retry does (completion.ts retryLater), write, send, delete. When somebody
 * changed the job first, this message is handled at its next receipt.
 */
async function recordLost(
  ctx: AwsStoreContext,
  record: JobRecord,
  lost: Reschedule,
  message: { queueUrl: string; handle: string; now: number },
): Promise<void> {
  const { queueUrl, handle, now } = message;
  const log = await logTopOf(ctx, record);
  const write = rescheduleUpdate(record, lost, log.highest, now);
  const out = await ctx.updateJobIf(record.jobId, expressionOf(write.update), {
    // As takeLease's, for a lease that ran out (a cancel ends it instead: decideLease).
    expression:
      "attempt = :seen AND attribute_not_exists(cancel_reason) AND #state = :running AND lease_expires_at <= :now",
    values: { ":running": num(S.RUNNING), ":seen": num(record.attempt), ":now": num(now) },
  }, "NONE");
  if (out === undefined) return;
  countAttemptEnd(lost);
  if (write.notice !== undefined) await putNotice(ctx, record.jobId, write.notice, log.top);
  ctx.jobWatchers.notify(record.jobId);
  await replaceMessage(ctx, queueUrl, handle, record);
}

/** 5 ms doubling: 5, 10, 20, 40, 80 ms. */
const ITEM_NOT_WRITTEN_BACKOFF: BackoffPolicy = { initialMs: 5, maxMs: 80, multiplier: 2 };

/**
 * A job item read right after its enqueue may not be written yet (the
 * message goes first): retry briefly, 5 ms and doubling, ~150 ms in all.
 */
async function itemSoon(ctx: AwsStoreContext, jobId: string): Promise<Item | undefined> {
  const item = await retry(() => ctx.getItem(jobId), {
    // A failed read is not retried here: only a job not written yet is.
    isRetryable: () => false,
    retryResult: (found) => found === undefined,
    maxAttempts: 6,
    // The full delay each time (random = 1): nothing to spread out, one reader waits.
    delayMs: (retries) => backoffDelayMs(retries, ITEM_NOT_WRITTEN_BACKOFF, () => 1),
    clock: ctx.clock,
    signal: ctx.closing,
  });
  // The store closed during a wait: refuse, as the next read would have.
  if (item === undefined) ctx.assertOpen();
  return item;
}

/** Points the lease at the receipt handle its own message came back with. */
async function adoptReceipt(
  ctx: AwsStoreContext,
  record: JobRecord,
  handle: string,
): Promise<void> {
  // Another attempt holds the job now: its own receipt stands.
  await ctx.call(
    "DynamoDB UpdateItem",
    () =>
      ctx.ddb.send(
        new UpdateItemCommand({
          TableName: ctx.jobsTable,
          Key: { job_id: { S: record.jobId } },
          UpdateExpression: "SET receipt_handle = :handle",
          ConditionExpression: "attempt = :attempt",
          ExpressionAttributeValues: { ":handle": { S: handle }, ":attempt": num(record.attempt) },
        }),
        ctx.abort(),
      ),
    { ignoreConditionFailure: true },
  );
}
