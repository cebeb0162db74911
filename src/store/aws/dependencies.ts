/**
 * Job dependencies in the AWS store (the rules are ../dependencies.ts's;
 * the order of writes and what a crash leaves are in specs/storage.md,
 * "Dependencies").
 *
 * A job that waits has `waiting_for` (a string set: the dependencies not
 * yet ended as needed) and no SQS message, so nothing can lease it; each
 * of those dependencies has the waiting job's id in its `dependents` set,
 * added only while it has not ended (a conditional ADD). Whoever ends a
 * job tells its dependents ({@link releaseDependents}): each is decided
 * again from its dependencies' statuses, and sent its message (ready),
 * cancelled (which tells its own dependents), or left waiting. A read of a
 * waiting job decides it again too ({@link settleWaiting}), which heals
 * one whose dependency ended without telling it (a crash in between).
 *
 * @module
 */
import { fromBinary } from "@bufbuild/protobuf";
import { type JobParams, JobParamsSchema, JobState } from "../../../gen/job/v1/job_pb.ts";
import {
  decideDependencies,
  dependenciesOf,
  type DependencyStatus,
  type DependencyVerdict,
  missingDependency,
} from "../dependencies.ts";
import { decideCancel, decideExpiry, stateAt } from "../lifecycle.ts";
import { BATCH_CONCURRENCY } from "./aws_limits.ts";
import { chunksOf, settleBounded } from "./batching.ts";
import { BATCH_GET_MAX, batchGetItems } from "./batch_get.ts";
import { writeFinish } from "./finish_write.ts";
import { isLiveJobItem, isWaiting, type JobRecord, jobRecordOf, viewOf } from "./job_item.ts";
import type { UpdateExpressionParts } from "./job_updates.ts";
import { sendMessageDueAt } from "./sqs_messages.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

const S = JobState;
/** DynamoDB's most keys per BatchGetItem (a job names at most 32 dependencies). */
/** Rounds of {@link settleWaiting} when a dependency ends while it registers. */
const SETTLE_TRIES = 3;

/**
 * What the dependencies of a job about to be enqueued allow, read now
 * (one consistent BatchGetItem).
 * @throws {InvalidArgumentError} naming the first that does not exist, before anything is written.
 */
export async function verdictAtEnqueue(
  ctx: AwsStoreContext,
  params: JobParams,
): Promise<DependencyVerdict> {
  const jobs = await readJobs(ctx, dependenciesOf(params).map((d) => d.jobId));
  missingDependency(params, (jobId) => jobs.has(jobId));
  const now = ctx.clock.now();
  return decideDependencies(params, (jobId) => statusOf(jobs.get(jobId), now));
}

/**
 * Right after the put of a new job that waits (`record`, with
 * `waiting_for`): cancels it when `verdict` says so, else registers it on
 * each dependency it waits for, and decides again when one of them had
 * ended meanwhile (its ADD refused). Answers the job as it is then.
 */
export async function startWaiting(
  ctx: AwsStoreContext,
  record: JobRecord,
  verdict: DependencyVerdict,
): Promise<JobRecord> {
  if (verdict.kind === "cancel") return await cancelDependent(ctx, record, verdict.reason);
  if (await register(ctx, record.jobId, record.waitingFor)) return record;
  return await settleWaiting(ctx, record);
}

/**
 * Decides the waiting job `record` again from its dependencies' statuses
 * and acts: ready → its message is sent (unless `send` is false: a
 * receive that holds one) and `waiting_for` removed; cancel → it ends
 * CANCELLED, and its own dependents are told; wait → `waiting_for` loses
 * the dependencies that ended, and it registers on any it waits for that
 * does not list it (a crash after its put). Answers the job as it is then.
 */
export async function settleWaiting(
  ctx: AwsStoreContext,
  record: JobRecord,
  options: { readonly send: boolean } = { send: true },
): Promise<JobRecord> {
  const params = fromBinary(JobParamsSchema, record.params);
  for (let tries = 1;; tries++) {
    const jobs = await readJobs(ctx, dependenciesOf(params).map((d) => d.jobId));
    const now = ctx.clock.now();
    const verdict = decideDependencies(params, (jobId) => statusOf(jobs.get(jobId), now));
    if (verdict.kind === "ready") return await release(ctx, record, options.send);
    if (verdict.kind === "cancel") return await cancelDependent(ctx, record, verdict.reason);
    const unregistered = verdict.waitingFor.filter((jobId) =>
      !(jobs.get(jobId)?.dependents.includes(record.jobId) ?? false)
    );
    // A refused ADD: that one ended meanwhile; the next round reads it ended.
    if (tries < SETTLE_TRIES && !await register(ctx, record.jobId, unregistered)) continue;
    return await narrowWaiting(ctx, record, verdict.waitingFor);
  }
}

/**
 * Tells the dependents of `ended` (the item right after the write that
 * ended it, whose `dependents` are every job that registered before it)
 * that it ended: each loses it from `waiting_for` and is decided again.
 * A dependent that cannot be told now (DynamoDB refusing) is decided again
 * at its next read; the end itself stands.
 */
export async function releaseDependents(ctx: AwsStoreContext, ended: JobRecord): Promise<void> {
  if (ended.dependents.length === 0) return;
  await settleBounded(
    ended.dependents,
    BATCH_CONCURRENCY,
    (dependentId) => dependencyEnded(ctx, dependentId, ended.jobId),
  );
}

/** One dependent told that `endedId` ended. */
async function dependencyEnded(
  ctx: AwsStoreContext,
  dependentId: string,
  endedId: string,
): Promise<void> {
  // The last one stays in the set: an empty set is no attribute, and the
  // attribute's presence is what says "no message sent yet" (see release).
  const out = await ctx.updateJobIf(dependentId, {
    UpdateExpression: "DELETE waiting_for :ended",
    ExpressionAttributeNames: {},
    ExpressionAttributeValues: { ":ended": { SS: [endedId] } },
  }, {
    expression:
      "#state = :scheduled AND contains(waiting_for, :endedId) AND size(waiting_for) > :one",
    values: { ":scheduled": num(S.SCHEDULED), ":endedId": { S: endedId }, ":one": num(1) },
  }, "ALL_NEW");
  let record: JobRecord;
  if (out !== undefined) {
    ctx.jobWatchers.notify(dependentId);
    record = jobRecordOf(out.Attributes!);
  } else {
    // Its last dependency, or it waits no more (released, cancelled, gone).
    const item = await ctx.getItem(dependentId);
    if (item === undefined) return;
    record = jobRecordOf(item);
  }
  if (isWaiting(record)) await settleWaiting(ctx, record);
}

/**
 * Lets a waiting job run: its message is sent first, as an enqueue's is
 * (its priority's band, delayed toward its delayed start), then
 * `waiting_for` is removed. A crash in between leaves a message for a job
 * that still looks waiting, which its receipt decides again (receive.ts);
 * two deciders at once may each send one, and the duplicate is deleted on
 * receipt. Answers the job as it is then.
 */
async function release(
  ctx: AwsStoreContext,
  record: JobRecord,
  send: boolean,
): Promise<JobRecord> {
  if (send) {
    await sendMessageDueAt(
      ctx,
      await ctx.queueUrl(record.queue, record.priority),
      record,
      record.notBeforeMs,
    );
  }

  const out = await ctx.updateJobIf(record.jobId, {
    UpdateExpression: "REMOVE waiting_for",
    ExpressionAttributeNames: {},
    ExpressionAttributeValues: {},
  }, {
    expression: "attribute_exists(waiting_for) AND #state = :scheduled",
    values: { ":scheduled": num(S.SCHEDULED) },
  }, "ALL_NEW");
  // Released (or cancelled) by someone else first: as they left it.
  if (out === undefined) return await ctx.record(record.jobId);
  ctx.jobWatchers.notify(record.jobId);
  return jobRecordOf(out.Attributes!);
}

/**
 * Ends the waiting job `record` CANCELLED with `reason`, through the
 * lifecycle's cancel (decideCancel) and the finish write, then tells its
 * own dependents, so the cancel goes down the chain.
 */
async function cancelDependent(
  ctx: AwsStoreContext,
  record: JobRecord,
  reason: string,
): Promise<JobRecord> {
  const now = ctx.clock.now();
  const decision = decideCancel(viewOf(record), { reason }, now);
  // Only a job that never ran waits, so it is never RUNNING ("mark").
  if (decision.kind !== "finish") return record;
  const written = await writeFinish(
    ctx,
    record,
    decision,
    now,
    decision.newReason ? decision.cancelReason : undefined,
  );
  if (written.ended) await releaseDependents(ctx, written.record);
  return written.record;
}

/**
 * Removes from `waiting_for` the dependencies that ended: conditional on
 * one it still waits for being in the set, so it never empties (see
 * dependencyEnded).
 */
async function narrowWaiting(
  ctx: AwsStoreContext,
  record: JobRecord,
  waitingFor: readonly string[],
): Promise<JobRecord> {
  const ended = record.waitingFor.filter((jobId) => !waitingFor.includes(jobId));
  if (ended.length === 0) return record;
  const out = await ctx.updateJobIf(record.jobId, {
    UpdateExpression: "DELETE waiting_for :ended",
    ExpressionAttributeNames: {},
    ExpressionAttributeValues: { ":ended": { SS: ended } },
  }, {
    expression: "#state = :scheduled AND contains(waiting_for, :still)",
    values: { ":scheduled": num(S.SCHEDULED), ":still": { S: waitingFor[0]! } },
  }, "ALL_NEW");
  if (out === undefined) return await ctx.record(record.jobId);
  ctx.jobWatchers.notify(record.jobId);
  return jobRecordOf(out.Attributes!);
}

/**
 * Adds `jobId` to the `dependents` of each of `dependencies` that has not
 * ended (its state attribute SCHEDULED or RUNNING); false when one had
 * (or is gone), so the caller decides again.
 */
async function register(
  ctx: AwsStoreContext,
  jobId: string,
  dependencies: readonly string[],
): Promise<boolean> {
  const update: UpdateExpressionParts = {
    UpdateExpression: "ADD dependents :dependent",
    ExpressionAttributeNames: {},
    ExpressionAttributeValues: { ":dependent": { SS: [jobId] } },
  };
  const condition = {
    expression: "#state IN (:scheduled, :running)",
    values: { ":scheduled": num(S.SCHEDULED), ":running": num(S.RUNNING) },
  };
  const added = await Promise.all(
    dependencies.map((dependency) => ctx.updateJobIf(dependency, update, condition, "NONE")),
  );
  return added.every((out) => out !== undefined);
}

/**
 * What a dependent reads of a dependency: its state as the lifecycle sees
 * it now (a lease that ran out on a cancelled job, or on the last attempt
 * its lost workers had, has ended it even before a read writes that down);
 * undefined for a job that is gone.
 */
function statusOf(record: JobRecord | undefined, now: number): DependencyStatus | undefined {
  if (record === undefined) return undefined;
  const view = viewOf(record);
  const expiry = decideExpiry(view, now);
  if (expiry.kind === "finish") {
    return {
      state: expiry.state,
      exitCode: expiry.result.exitCode,
      failureReason: expiry.failureReason,
    };
  }
  return {
    state: stateAt(view, now),
    exitCode: view.result?.exitCode ?? 0,
    failureReason: record.failureReason,
  };
}

/**
 * The live jobs among `jobIds`, by id (consistent BatchGetItem, sending
 * again the keys DynamoDB leaves unprocessed).
 */
async function readJobs(
  ctx: AwsStoreContext,
  jobIds: readonly string[],
): Promise<Map<string, JobRecord>> {
  const jobs = new Map<string, JobRecord>();
  for (const ids of chunksOf([...new Set(jobIds)], BATCH_GET_MAX)) {
    const items = await batchGetItems(ctx, ids.map((jobId) => ({ job_id: { S: jobId } })));
    const now = ctx.clock.now();
    for (const item of items) {
      if (isLiveJobItem(item, now)) jobs.set(item.job_id!.S!, jobRecordOf(item));
    }
  }
  return jobs;
}
