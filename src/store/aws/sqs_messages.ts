/**
 * The AWS store's SQS message calls: send one, change a message's
 * visibility, delete one, and a batch call that resends the entries whose
 * failure may pass. A receipt handle SQS no longer knows is not an error
 * here: its message comes back, and is disposed of at its next receipt.
 *
 * @module
 */
import {
  type BatchResultErrorEntry,
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { sendUntilNoneLeft } from "./batching.ts";
import { StoreClosedError } from "../errors.ts";
import { SQS_BATCH_RETRIES } from "./aws_limits.ts";
import {
  asStoreError,
  batchEntryError,
  isRetryableBatchEntry,
  isStaleReceipt,
} from "./aws_errors.ts";
import { messageBody } from "./job_item.ts";
import { delaySecondsUntil } from "./sqs_schedule.ts";
import type { AwsStoreContext } from "./store_context.ts";

/**
 * Sends the "this job is ready" message of a job: a new one (attempt 0), or
 * one scheduled again after `attempt` (a retry, shown `delaySeconds` later,
 * or a redrive).
 */
export async function sendMessage(
  ctx: AwsStoreContext,
  queueUrl: string,
  jobId: string,
  queue: string,
  next: { attempt: number; delaySeconds: number } = { attempt: 0, delaySeconds: 0 },
): Promise<void> {
  await ctx.call("SQS SendMessage", () =>
    ctx.sqs.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: messageBody(jobId, queue, next.attempt),
        ...(next.delaySeconds > 0 ? { DelaySeconds: next.delaySeconds } : {}),
      }),
      ctx.abort(),
    ));
}

/**
 * Sends the message of `job`'s next attempt on `queueUrl`, due at
 * `notBeforeMs` as far as SQS delays go (sqs_schedule.ts: a wait past the
 * longest delay is received early and put back).
 */
export async function sendMessageDueAt(
  ctx: AwsStoreContext,
  queueUrl: string,
  job: { readonly jobId: string; readonly queue: string; readonly attempt: number },
  notBeforeMs: number,
): Promise<void> {
  await sendMessage(ctx, queueUrl, job.jobId, job.queue, {
    attempt: job.attempt,
    delaySeconds: delaySecondsUntil(notBeforeMs, ctx.clock.now(), ctx.sqsMaxDelaySeconds),
  });
}

/**
 * Puts the next attempt's message (after `attempt`, shown at once) in place
 * of the one `handle` holds: sent, then the old one deleted. Each attempt
 * so has a message of its own, whose receive count (maxReceiveCount,
 * provision.ts) counts that attempt's receives only. The caller has written
 * the job SCHEDULED first: a fresh message received before that write would
 * find the job held and be deleted. Cut short before the send, the old
 * message comes back when its visibility ends and stands in.
 */
export async function replaceMessage(
  ctx: AwsStoreContext,
  queueUrl: string,
  handle: string,
  job: { jobId: string; queue: string; attempt: number },
): Promise<void> {
  await sendMessage(ctx, queueUrl, job.jobId, job.queue, { attempt: job.attempt, delaySeconds: 0 });
  await deleteMessage(ctx, queueUrl, handle);
}

export async function changeVisibility(
  ctx: AwsStoreContext,
  queueUrl: string,
  handle: string,
  seconds: number,
): Promise<void> {
  if (handle === "") return;
  try {
    await ctx.sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: queueUrl,
        ReceiptHandle: handle,
        VisibilityTimeout: seconds,
      }),
      ctx.abort(),
    );
  } catch (error) {
    // A handle that expired belongs to a message SQS already made visible again.
    if (!isStaleReceipt(error)) throw asStoreError("SQS ChangeMessageVisibility", error);
  }
}

export async function deleteMessage(
  ctx: AwsStoreContext,
  queueUrl: string,
  handle: string,
): Promise<void> {
  if (handle === "") return;
  try {
    await ctx.sqs.send(
      new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: handle }),
      ctx.abort(),
    );
  } catch (error) {
    // A stale handle's message is deleted at its next receipt (its job is finished).
    if (!isStaleReceipt(error)) throw asStoreError("SQS DeleteMessage", error);
  }
}

/** What an SQS batch call answers about its entries. */
interface SqsBatchAnswer {
  Successful?: readonly { Id: string | undefined }[] | undefined;
  Failed?: readonly BatchResultErrorEntry[] | undefined;
}

/**
 * One SQS batch call over `entries` (at most SQS_BATCH_MAX), sending again
 * the entries whose failure may pass, a few times with backoff. Returns
 * the errors of the entries that still failed, by entry Id; an entry SQS
 * reports neither way counts as failed. `harmless` failures are not errors.
 */
export async function sqsBatch<E extends { Id: string }>(
  ctx: AwsStoreContext,
  operation: string,
  entries: readonly E[],
  send: (entries: E[]) => Promise<SqsBatchAnswer>,
  harmless: (failure: BatchResultErrorEntry) => boolean = () => false,
): Promise<Map<string, unknown>> {
  const failures = new Map<string, unknown>();
  let pending = [...entries];
  await sendUntilNoneLeft(async (retries) => {
    let out;
    try {
      out = await ctx.call(operation, () => send(pending));
    } catch (error) {
      for (const entry of pending) failures.set(entry.Id, error);
      pending = [];
      return pending;
    }
    const succeeded = new Set(out?.Successful?.map((entry) => entry.Id));
    const failed = new Map(out?.Failed?.map((entry) => [entry.Id, entry]));
    const again: E[] = [];
    for (const entry of pending) {
      if (succeeded.has(entry.Id)) continue;
      const failure = failed.get(entry.Id);
      if (failure !== undefined && harmless(failure)) continue;
      if (failure !== undefined && isRetryableBatchEntry(failure) && retries < SQS_BATCH_RETRIES) {
        again.push(entry);
      } else {
        failures.set(
          entry.Id,
          asStoreError(
            operation,
            failure === undefined
              ? new Error(`SQS reported no outcome for entry ${entry.Id}`)
              : batchEntryError(failure),
          ),
        );
      }
    }
    pending = again;
    return pending;
  }, { clock: ctx.clock, signal: ctx.closing });
  // The store closed during a backoff: what is left was never sent again.
  for (const entry of pending) failures.set(entry.Id, new StoreClosedError());
  return failures;
}
