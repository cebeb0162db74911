/**
 * Redrive: a dead letter (a job FAILED after using every attempt) goes back
 * to its queue, SCHEDULED with a fresh retry budget, as the lifecycle
 * decides (decideRedrive). Its message is sent before the job is written,
 * as an enqueue's is: a crash in between leaves a message for a FAILED job
 * (deleted on receipt), never a SCHEDULED job without a message. A receipt
 * that beats the write looks again shortly (see isRedriveInFlight in
 * receive.ts).
 *
 * @module
 */
import { type Job, JobState } from "../../../gen/job/v1/job_pb.ts";
import { BackendUnavailableError } from "../errors.ts";
import { decideRedrive } from "../lifecycle.ts";
import { settled } from "./finish_job.ts";
import { jobOf, type JobRecord, jobRecordOf, viewOf } from "./job_item.ts";
import { expressionOf, redriveUpdate } from "./job_updates.ts";
import { sendMessage } from "./sqs_messages.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

/** Tries of the conditional write, each after reading the job again. */
const REDRIVE_TRIES = 3;

/**
 * Puts the dead letter `jobId` back in its queue.
 * @throws {JobNotRedrivableError} when it is no dead letter (decideRedrive).
 */
export async function redrive(ctx: AwsStoreContext, jobId: string): Promise<Job> {
  for (let tries = 1;; tries++) {
    const record = await settled(ctx, await ctx.record(jobId));
    const written = await redriveOnce(ctx, record);
    if (written !== undefined) return jobOf(written, ctx.clock.now());
    // Someone changed the job since it was read (another redrive, most
    // likely): decide again on what it is now.
    if (tries >= REDRIVE_TRIES) {
      throw new BackendUnavailableError("redrive", `job ${jobId} kept changing; retry`);
    }
  }
}

/** One redrive of `record` as read; undefined when the job changed first. */
async function redriveOnce(
  ctx: AwsStoreContext,
  record: JobRecord,
): Promise<JobRecord | undefined> {
  const now = ctx.clock.now();
  const decision = decideRedrive(viewOf(record), now);
  const queueUrl = await ctx.queueUrl(record.queue, record.priority);
  await sendMessage(ctx, queueUrl, record.jobId, record.queue, {
    attempt: record.attempt,
    delaySeconds: 0,
  });
  const update = expressionOf(redriveUpdate(decision, now));
  const out = await ctx.updateJobIf(record.jobId, update, {
    expression: "attempt = :seen AND #state = :failed",
    values: { ":seen": num(record.attempt), ":failed": num(JobState.FAILED) },
  }, "ALL_NEW");
  if (out === undefined) return undefined;
  ctx.jobWatchers.notify(record.jobId);
  return jobRecordOf(out.Attributes!);
}
