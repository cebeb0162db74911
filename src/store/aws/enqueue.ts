/**
 * Enqueueing one job, and claiming its request_id. The SQS message is sent
 * before the job is written: a crash in between leaves a message for an
 * unknown job, which is deleted on receipt once it is a minute old, never a
 * job without a message. An idempotent enqueue claims its request_id with a
 * conditional put on an item keyed by it (no read of GSI2, whose reads
 * lag), and a retry of a half-done one finishes it. A job whose
 * dependencies have not ended is written with `waiting_for` and no message,
 * which its release sends (dependencies.ts).
 *
 * @module
 */
import { GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { toBinary } from "@bufbuild/protobuf";
import { ExecutionConfigSchema, JobState } from "../../../gen/job/v1/job_pb.ts";
import { BackendUnavailableError } from "../errors.ts";
import type { EnqueueInput, EnqueueResult } from "../job_store.ts";
import { decideEnqueue, decideNewJob } from "../lifecycle.ts";
import { InvalidArgumentError } from "../../protocol/invalid_argument.ts";
import { YOUNG_MESSAGE_MS } from "./aws_limits.ts";
import { asStoreError, isConditionFailed } from "./aws_errors.ts";
import {
  idempotencyClaimOf,
  idempotencyItem,
  idempotencyKey,
  isWaiting,
  type Item,
  jobOf,
  type JobRecord,
  jobRecordOf,
  newJobItem,
} from "./job_item.ts";
import { startWaiting, verdictAtEnqueue } from "./dependencies.ts";
import { dependenciesOf, type DependencyVerdict, hasDependencies } from "../dependencies.ts";
import { sendMessageDueAt } from "./sqs_messages.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

const S = JobState;

/** What an enqueue has to do once its request_id is settled. */
export interface EnqueuePlan {
  /** The job: a fresh one, or the one the request_id names. */
  readonly jobId: string;
  /** The answer, when the job exists already (nothing to write). */
  readonly existing?: EnqueueResult;
  /** Whether to send a message for the job. */
  readonly send: boolean;
  /**
   * When the job's first attempt may start (0: at once): the lifecycle's
   * decision for a new job (decideEnqueue), the stored one for a job that
   * exists. Its message is delayed toward it, its item keeps it.
   */
  readonly notBeforeMs: number;
}

export async function enqueue(ctx: AwsStoreContext, input: EnqueueInput): Promise<EnqueueResult> {
  // Resolve the queue first: an unknown queue writes nothing.
  const queueUrl = await ctx.queueUrl(input.queue, input.params.priority);
  return await enqueueTo(ctx, queueUrl, input);
}

/** {@link enqueue} once the queue's URL is known. */
export async function enqueueTo(
  ctx: AwsStoreContext,
  queueUrl: string,
  input: EnqueueInput,
): Promise<EnqueueResult> {
  // Dependencies are read before anything is written: an unknown one stores nothing.
  const verdict = hasDependencies(input.params)
    ? await verdictAtEnqueue(ctx, input.params)
    : undefined;
  const now = ctx.clock.now();
  const plan = await planEnqueue(ctx, input, ctx.ids.next(now), now);
  if (verdict !== undefined && verdict.kind !== "ready") {
    return plan.existing ?? await putWaitingJob(ctx, input, plan, verdict, now);
  }
  if (plan.send) {
    // Toward its delayed start, as far as SQS delays go.
    await sendMessageDueAt(
      ctx,
      queueUrl,
      { jobId: plan.jobId, queue: input.queue, attempt: 0 },
      plan.notBeforeMs,
    );
  }
  return plan.existing ?? await putNewJob(ctx, input, plan, now);
}

/**
 * Writes the item of a job its dependencies do not let run yet, with
 * `waiting_for` and no message, then registers it on them or cancels it
 * (dependencies.ts startWaiting); answers the enqueue.
 */
async function putWaitingJob(
  ctx: AwsStoreContext,
  input: EnqueueInput,
  plan: Pick<EnqueuePlan, "jobId" | "notBeforeMs">,
  verdict: Exclude<DependencyVerdict, { kind: "ready" }>,
  now: number,
): Promise<EnqueueResult> {
  // A job to cancel waits too until the cancel is written: a crash in
  // between leaves it to be decided again at its next read.
  const waitingFor = verdict.kind === "wait"
    ? verdict.waitingFor
    : dependenciesOf(input.params).map((d) => d.jobId);
  const put = await putJobItem(ctx, input, plan, now, waitingFor);
  if (!put.created) return { job: jobOf(put.record, now), created: false };
  const record = await startWaiting(ctx, put.record, verdict);
  return { job: jobOf(record, ctx.clock.now()), created: true };
}

/**
 * The lifecycle's start of a new job (decideNewJob), which also refuses a
 * run_at long past. A request_id's repeat is answered with its job however
 * late it comes: such a refusal stands only when no claim of the request_id
 * exists yet (one extra read, only for a run_at long past).
 */
async function newJobStart(
  ctx: AwsStoreContext,
  input: EnqueueInput,
  now: number,
): Promise<number> {
  try {
    return decideNewJob(input.params, now).notBeforeMs;
  } catch (error) {
    if (!(error instanceof InvalidArgumentError) || input.requestId === "") throw error;
    if (await readClaim(ctx, input.requestId) === undefined) throw error;
    return 0; // a repeat: its job (or the claim's repair) decides
  }
}

/**
 * Settles `input`'s request_id, if any: which job the enqueue is about
 * (`freshId`, or the one an earlier call claimed), whether that job
 * exists already, and whether a message must be sent for it.
 */
export async function planEnqueue(
  ctx: AwsStoreContext,
  input: EnqueueInput,
  freshId: string,
  now: number,
): Promise<EnqueuePlan> {
  const notBeforeMs = await newJobStart(ctx, input, now);
  if (input.requestId === "") return { jobId: freshId, send: true, notBeforeMs };
  const claimed = await claimRequestId(ctx, input, freshId, now);
  if (claimed === undefined) return { jobId: freshId, send: true, notBeforeMs };
  const existing = await ctx.getItem(claimed.jobId);
  if (existing !== undefined) {
    const record = jobRecordOf(existing);
    return {
      jobId: claimed.jobId,
      existing: { job: jobOf(record, now), created: false },
      // A job nobody has taken yet may have lost its message to a crash:
      // send another (a duplicate is deleted on receipt). One waiting for
      // dependencies has none yet: its release sends it.
      send: record.attempt === 0 && record.state === S.SCHEDULED && !isWaiting(record),
      notBeforeMs: record.notBeforeMs,
    };
  }
  if (now - claimed.claimedAtMs < YOUNG_MESSAGE_MS) {
    // The first call died between its claim and its job: finish its work.
    return { jobId: claimed.jobId, send: true, notBeforeMs };
  }
  // Its job is gone (past its TTL): the key is free for a new job.
  await reclaimRequestId(ctx, input, claimed.jobId, freshId, now);
  return { jobId: freshId, send: true, notBeforeMs };
}

/** Writes the item of a job whose message is sent; answers the enqueue. */
export async function putNewJob(
  ctx: AwsStoreContext,
  input: EnqueueInput,
  plan: Pick<EnqueuePlan, "jobId" | "notBeforeMs">,
  now: number,
): Promise<EnqueueResult> {
  const put = await putJobItem(ctx, input, plan, now, []);
  return { job: jobOf(put.record, now), created: put.created };
}

/**
 * Writes a new job's item (with `waitingFor`, its dependencies still to
 * end); `created` is false when a concurrent retry of the same repair
 * wrote it first, and `record` is then the item it wrote.
 */
async function putJobItem(
  ctx: AwsStoreContext,
  input: EnqueueInput,
  plan: Pick<EnqueuePlan, "jobId" | "notBeforeMs">,
  now: number,
  waitingFor: readonly string[],
): Promise<{ record: JobRecord; created: boolean }> {
  const jobId = plan.jobId;
  const item = newJobItem({
    waitingFor,
    jobId,
    notBeforeMs: plan.notBeforeMs,
    queue: input.queue,
    requestId: input.requestId,
    nowMs: now,
    params: input.params,
    executionConfig: toBinary(ExecutionConfigSchema, input.executionConfig),
  });
  const put = await ctx.call("DynamoDB PutItem", () =>
    ctx.ddb.send(
      new PutItemCommand({
        TableName: ctx.jobsTable,
        Item: item,
        // New, or a leftover past its TTL that DynamoDB has not deleted yet.
        ConditionExpression: "attribute_not_exists(job_id) OR #ttl BETWEEN :one AND :now",
        ExpressionAttributeNames: { "#ttl": "ttl" },
        ExpressionAttributeValues: { ":one": num(1), ":now": num(Math.floor(now / 1000)) },
      }),
      ctx.abort(),
    ), { ignoreConditionFailure: true });
  if (put === undefined) {
    // A concurrent retry of the same repair wrote it first.
    const written = await ctx.getItem(jobId);
    if (written === undefined) {
      throw asStoreError("DynamoDB PutItem", new Error(`job ${jobId} could not be written`));
    }
    return { record: jobRecordOf(written), created: false };
  }
  return { record: jobRecordOf(item), created: true };
}

/**
 * Claims `input.requestId` for `jobId`. Returns undefined when this call
 * claimed it, or the earlier claim when the lifecycle takes this enqueue
 * for a repeat of it (decideEnqueue: same queue and parameters, else an
 * IdempotencyConflictError).
 */
async function claimRequestId(
  ctx: AwsStoreContext,
  input: EnqueueInput,
  jobId: string,
  now: number,
): Promise<{ jobId: string; claimedAtMs: number } | undefined> {
  const claimed = await ctx.call(
    "DynamoDB PutItem",
    () =>
      ctx.ddb.send(
        new PutItemCommand({
          TableName: ctx.jobsTable,
          Item: idempotencyItem(input.requestId, jobId, input.queue, input.params, now),
          ConditionExpression: "attribute_not_exists(job_id)",
        }),
        ctx.abort(),
      ),
    { ignoreConditionFailure: true },
  );
  if (claimed !== undefined) return undefined;
  // The request_id is claimed already: by which job?
  const item = await readClaim(ctx, input.requestId);
  if (item === undefined) {
    throw asStoreError("DynamoDB GetItem", new Error("the request_id claim vanished"));
  }
  const claim = idempotencyClaimOf(item);
  // Throws IdempotencyConflictError when the request_id was used for a different job.
  decideEnqueue(claim, input, now);
  return { jobId: claim.jobId, claimedAtMs: claim.claimedAtMs };
}

/** Points the request_id at a new job, if it still points at `oldJobId` (else another call won). */
async function reclaimRequestId(
  ctx: AwsStoreContext,
  input: EnqueueInput,
  oldJobId: string,
  newJobId: string,
  now: number,
): Promise<void> {
  try {
    await ctx.ddb.send(
      new PutItemCommand({
        TableName: ctx.jobsTable,
        Item: idempotencyItem(input.requestId, newJobId, input.queue, input.params, now),
        ConditionExpression: "idempotency_of = :old",
        ExpressionAttributeValues: { ":old": { S: oldJobId } },
      }),
      ctx.abort(),
    );
  } catch (error) {
    if (isConditionFailed(error)) {
      throw new BackendUnavailableError(
        "enqueue",
        `request_id "${input.requestId}" was claimed by a concurrent call; retry`,
      );
    }
    throw asStoreError("DynamoDB PutItem", error);
  }
}

/** The claim item of `requestId`, read consistently, or undefined when there is none. */
async function readClaim(ctx: AwsStoreContext, requestId: string): Promise<Item | undefined> {
  const out = await ctx.call("DynamoDB GetItem", () =>
    ctx.ddb.send(
      new GetItemCommand({
        TableName: ctx.jobsTable,
        Key: idempotencyKey(requestId),
        ConsistentRead: true,
      }),
      ctx.abort(),
    ));
  return out?.Item;
}
