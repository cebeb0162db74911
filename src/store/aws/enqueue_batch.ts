/**
 * Enqueueing many jobs at once with SQS's and DynamoDB's batch calls, in the
 * same order of steps as one enqueue (enqueue.ts): request_ids settled,
 * messages sent, then jobs written, a job whose message failed never
 * written.
 *
 * @module
 */
import { BatchWriteItemCommand, PutItemCommand, type WriteRequest } from "@aws-sdk/client-dynamodb";
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { toBinary } from "@bufbuild/protobuf";
import { ExecutionConfigSchema } from "../../../gen/job/v1/job_pb.ts";
import { settle } from "../batch.ts";
import { hasDependencies } from "../dependencies.ts";
import { BackendUnavailableError, StoreClosedError } from "../errors.ts";
import type { BatchOutcome, EnqueueInput, EnqueueResult } from "../job_store.ts";
import { countStoreMetric } from "../store_meter.ts";
import { BATCH_CONCURRENCY, DYNAMODB_BATCH_RETRIES, SQS_BATCH_MAX } from "./aws_limits.ts";
import { asStoreError } from "./aws_errors.ts";
import { chunksOf, compareStrings, groupBy, sendUntilNoneLeft, settleBounded } from "./batching.ts";
import { type EnqueuePlan, enqueueTo, planEnqueue, putNewJob } from "./enqueue.ts";
import { type Item, jobOf, jobRecordOf, messageBody, newJobItem } from "./job_item.ts";
import { sqsBatch } from "./sqs_messages.ts";
import { type AwsStoreContext, queueUrlKey } from "./store_context.ts";
import { delaySecondsUntil } from "./sqs_schedule.ts";

/** DynamoDB's most requests per BatchWriteItem. */
const DYNAMODB_BATCH_WRITE_MAX = 25;

/** An item of enqueueBatch with its plan. */
interface PlannedEnqueue {
  readonly index: number;
  readonly queueUrl: string;
  readonly input: EnqueueInput;
  readonly plan: EnqueuePlan;
}

/**
 * Enqueues each input as enqueue does, in three steps: settle the
 * request_ids (each claim is a conditional write of its own, which no
 * batch call can carry), send the messages in request order with
 * SendMessageBatch, then write the jobs, with BatchWriteItem for those
 * without a request_id. A request_id met earlier in the batch is enqueued
 * after the rest, as a later call would be. A job with dependencies is
 * enqueued on its own, as enqueue does (its dependencies read first).
 */
export async function enqueueBatch(
  ctx: AwsStoreContext,
  inputs: readonly EnqueueInput[],
): Promise<BatchOutcome<EnqueueResult>[]> {
  const outcomes = new Array<BatchOutcome<EnqueueResult>>(inputs.length);
  // Resolve every queue first: an item for an unknown queue writes nothing.
  const urls = await ctx.queueUrls(
    inputs.map((input) => ({ queue: input.queue, priority: input.params.priority })),
  );
  const now = ctx.clock.now();
  const entries: { index: number; queueUrl: string; input: EnqueueInput; jobId: string }[] = [];
  const repeats: { index: number; queueUrl: string; input: EnqueueInput }[] = [];
  const dependents: { index: number; queueUrl: string; input: EnqueueInput }[] = [];
  const requestIds = new Set<string>();
  inputs.forEach((input, index) => {
    const url = urls.get(queueUrlKey({ queue: input.queue, priority: input.params.priority }))!;
    if (!url.ok) {
      outcomes[index] = url;
    } else if (input.requestId !== "" && requestIds.has(input.requestId)) {
      repeats.push({ index, queueUrl: url.value, input });
    } else if (hasDependencies(input.params)) {
      // Read, written and registered as one enqueue does (dependencies.ts).
      if (input.requestId !== "") requestIds.add(input.requestId);
      dependents.push({ index, queueUrl: url.value, input });
    } else {
      if (input.requestId !== "") requestIds.add(input.requestId);
      // Ids are drawn in request order, so the batch's jobs sort in that order.
      entries.push({ index, queueUrl: url.value, input, jobId: ctx.ids.next(now) });
    }
  });
  const plans = await settleBounded(
    entries,
    BATCH_CONCURRENCY,
    (entry) => planEnqueue(ctx, entry.input, entry.jobId, now),
  );
  const planned: PlannedEnqueue[] = [];
  plans.forEach((plan, k) => {
    const entry = entries[k]!;
    if (plan.ok) planned.push({ ...entry, plan: plan.value });
    else outcomes[entry.index] = plan;
  });
  for (const [k, outcome] of (await sendAndWrite(ctx, planned, now)).entries()) {
    outcomes[planned[k]!.index] = outcome;
  }
  await settleBounded(dependents, BATCH_CONCURRENCY, async ({ index, queueUrl, input }) => {
    outcomes[index] = await settle(() => enqueueTo(ctx, queueUrl, input));
  });
  const byRequestId = groupBy(repeats, (repeat) => repeat.input.requestId);
  await settleBounded([...byRequestId.values()], BATCH_CONCURRENCY, async (group) => {
    for (const { index, queueUrl, input } of group) {
      outcomes[index] = await settle(() => enqueueTo(ctx, queueUrl, input));
    }
  });
  return outcomes;
}

/**
 * Sends the planned jobs' messages, then writes their items, as enqueue
 * orders them: a message whose job is not written yet waits on receipt (see
 * claim in receive.ts), while a job without a message would never run, so a
 * job whose message failed is not written. Messages go out in request order
 * for each queue (a standard queue keeps order only best-effort; the batch
 * adds no disorder of its own), window by window; each window's items are
 * written while the next window's messages go out, which keeps every
 * message's wait for its job short.
 */
async function sendAndWrite(
  ctx: AwsStoreContext,
  planned: readonly PlannedEnqueue[],
  now: number,
): Promise<BatchOutcome<EnqueueResult>[]> {
  const outcomes = new Array<BatchOutcome<EnqueueResult>>(planned.length);
  // Grouped by queue (a stable sort keeps request order within each), so
  // that most windows send full SendMessageBatch calls to one queue.
  const positions = planned.map((_, k) => k).sort((a, b) =>
    compareStrings(planned[a]!.queueUrl, planned[b]!.queueUrl) || a - b
  );
  const writes: Promise<void>[] = [];
  for (const window of chunksOf(positions, DYNAMODB_BATCH_WRITE_MAX)) {
    const unsent = await sendWindow(ctx, window.map((k) => planned[k]!));
    writes.push((async () => {
      const written = await settle(() =>
        writeWindow(ctx, window.map((k) => planned[k]!), unsent, now)
      );
      window.forEach((k, i) => outcomes[k] = written.ok ? written.value[i]! : written);
    })());
  }
  await Promise.all(writes);
  return outcomes;
}

/**
 * Sends the messages of a window's jobs that need one, each queue's in
 * order (queues in parallel); returns the errors of those that failed,
 * by position in the window.
 */
async function sendWindow(
  ctx: AwsStoreContext,
  window: readonly PlannedEnqueue[],
): Promise<Map<number, unknown>> {
  const failures = new Map<number, unknown>();
  const toSend = window.flatMap((entry, i) => entry.plan.send ? [i] : []);
  const now = ctx.clock.now();
  const delayOf = (plan: EnqueuePlan) => {
    const delaySeconds = delaySecondsUntil(plan.notBeforeMs, now, ctx.sqsMaxDelaySeconds);
    return delaySeconds > 0 ? { DelaySeconds: delaySeconds } : {};
  };
  const byQueue = groupBy(toSend, (i) => window[i]!.queueUrl);
  await Promise.all([...byQueue].map(async ([queueUrl, members]) => {
    for (const group of chunksOf(members, SQS_BATCH_MAX)) {
      const failed = await sqsBatch(
        ctx,
        "SQS SendMessageBatch",
        group.map((i) => ({
          Id: String(i),
          MessageBody: messageBody(window[i]!.plan.jobId, window[i]!.input.queue, 0),
          ...delayOf(window[i]!.plan),
        })),
        (entries) =>
          ctx.sqs.send(
            new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }),
            ctx.abort(),
          ),
      );
      for (const [id, error] of failed) failures.set(Number(id), error);
    }
  }));
  return failures;
}

/**
 * Writes a window's jobs whose message went out: with BatchWriteItem for
 * jobs without a request_id, with enqueue's conditional PutItem for the
 * others (one may repair a half-done enqueue, which reuses its id).
 * Answers each job of the window.
 */
async function writeWindow(
  ctx: AwsStoreContext,
  window: readonly PlannedEnqueue[],
  unsent: ReadonlyMap<number, unknown>,
  now: number,
): Promise<BatchOutcome<EnqueueResult>[]> {
  const outcomes = new Array<BatchOutcome<EnqueueResult>>(window.length);
  const plain: { i: number; item: Item }[] = [];
  const claimed: number[] = [];
  window.forEach((entry, i) => {
    const failure = unsent.get(i);
    if (failure !== undefined) outcomes[i] = { ok: false, error: failure };
    else if (entry.plan.existing !== undefined) {
      outcomes[i] = { ok: true, value: entry.plan.existing };
    } else if (entry.input.requestId !== "") claimed.push(i);
    else {
      const item = newJobItem({
        jobId: entry.plan.jobId,
        notBeforeMs: entry.plan.notBeforeMs,
        queue: entry.input.queue,
        requestId: "",
        nowMs: now,
        params: entry.input.params,
        executionConfig: toBinary(ExecutionConfigSchema, entry.input.executionConfig),
      });
      plain.push({ i, item });
    }
  });
  const [unwritten, puts] = await Promise.all([
    putJobItems(ctx, plain.map(({ item }) => item)),
    settleBounded(
      claimed,
      BATCH_CONCURRENCY,
      (i) => putNewJob(ctx, window[i]!.input, window[i]!.plan, now),
    ),
  ]);
  for (const { i, item } of plain) {
    const error = unwritten.get(window[i]!.plan.jobId);
    outcomes[i] = error === undefined
      ? { ok: true, value: { job: jobOf(jobRecordOf(item), now), created: true } }
      : { ok: false, error };
  }
  puts.forEach((outcome, k) => outcomes[claimed[k]!] = outcome);
  return outcomes;
}

/**
 * Writes new job items with BatchWriteItem, retrying what DynamoDB leaves
 * unprocessed; returns the errors of the items not written, by job id.
 *
 * BatchWriteItem takes no condition, unlike enqueue's PutItem. None is
 * needed: these ids are fresh UUIDv7s from this store's generator, so no
 * item can hold them (enqueue's condition protects the repair of an
 * idempotent enqueue, which reuses an id and never comes here).
 */
async function putJobItems(
  ctx: AwsStoreContext,
  items: readonly Item[],
): Promise<Map<string, Error>> {
  const failures = new Map<string, Error>();
  if (items.length === 0) return failures;
  let pending: WriteRequest[] = items.map((Item) => ({ PutRequest: { Item } }));
  /** One BatchWriteItem of what is pending; answers what is left to retry. */
  const writeRound = async (retries: number): Promise<WriteRequest[]> => {
    ctx.assertOpen();
    let unprocessed: WriteRequest[];
    try {
      const out = await ctx.ddb.send(
        new BatchWriteItemCommand({ RequestItems: { [ctx.jobsTable]: pending } }),
        ctx.abort(),
      );
      unprocessed = out.UnprocessedItems?.[ctx.jobsTable] ?? [];
    } catch (error) {
      if (ctx.closed) failAll(failures, pending, new StoreClosedError());
      // The call is refused whole when one item is (too large, say):
      // write them one by one so that only that item fails, as with enqueue.
      else if (isValidationError(error) && pending.length > 1) {
        for (const [jobId, failure] of await putEach(ctx, pending)) {
          failures.set(jobId, failure);
        }
      } else failAll(failures, pending, asStoreError("DynamoDB BatchWriteItem", error));
      return [];
    }
    if (unprocessed.length === 0) return [];
    if (retries >= DYNAMODB_BATCH_RETRIES) {
      failAll(
        failures,
        unprocessed,
        new BackendUnavailableError(
          "DynamoDB BatchWriteItem",
          `items stayed unprocessed after ${retries} retries`,
        ),
      );
      return [];
    }
    // One count per round, labelled like the client's own counts of the
    // SDK's retries (aws_clients.ts), which this batch_retries series shares.
    countStoreMetric("airunner.dynamodb.batch_retries.total", 1, {
      operation: "BatchWriteItemCommand",
    });
    return unprocessed;
  };
  await sendUntilNoneLeft(async (retries) => {
    pending = await writeRound(retries);
    return pending;
  }, { clock: ctx.clock, signal: ctx.closing });
  // The store closed during a backoff: as the next round would, refuse.
  if (pending.length > 0) ctx.assertOpen();
  return failures;
}

/** Writes each request with its own PutItem; returns the errors by job id. */
async function putEach(
  ctx: AwsStoreContext,
  requests: readonly WriteRequest[],
): Promise<Map<string, Error>> {
  const outcomes = await settleBounded(
    requests,
    BATCH_CONCURRENCY,
    (request) =>
      ctx.call("DynamoDB PutItem", () =>
        ctx.ddb.send(
          new PutItemCommand({ TableName: ctx.jobsTable, Item: request.PutRequest?.Item }),
          ctx.abort(),
        )),
  );
  const failures = new Map<string, Error>();
  outcomes.forEach((outcome, i) => {
    if (!outcome.ok) failures.set(jobIdOfRequest(requests[i]!), outcome.error as Error);
  });
  return failures;
}

/** Records `error` for every request's job; returns `failures`. */
function failAll(
  failures: Map<string, Error>,
  requests: readonly WriteRequest[],
  error: Error,
): Map<string, Error> {
  for (const request of requests) failures.set(jobIdOfRequest(request), error);
  return failures;
}

function jobIdOfRequest(request: WriteRequest): string {
  return request.PutRequest?.Item?.job_id?.S ?? "";
}

function isValidationError(error: unknown): boolean {
  return (error as { name?: unknown } | null)?.name === "ValidationException";
}
