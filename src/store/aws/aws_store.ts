/**
 * The AWS JobStore: SQS carries "this job is ready" messages, DynamoDB holds
 * jobs and their events. Several stateless servers share one deployment.
 *
 * Correctness does not rest on anything DynamoDB Local stand-ins lack or
 * real AWS does not promise:
 * - No transactions. Each step is one conditional write, ordered so a crash
 *   between steps leaves nothing a retry cannot repair.
 * - Enqueue sends the SQS message before it writes the job: a crash in
 *   between leaves a message for an unknown job, which is deleted on receipt
 *   once it is a minute old, never a job without a message. An idempotent
 *   enqueue claims its request_id with a conditional put on an item keyed by
 *   it (no read of GSI2, whose reads lag), and a retry of a half-done one
 *   finishes it.
 * - Leases are fenced by attempt: extend, publish and complete are
 *   conditional on the job still being on the token's attempt with its lease
 *   unexpired. SQS messages are hints: a receive claims the job only with a
 *   conditional update, and a message for a finished, unknown or already
 *   leased job is deleted (or, for the lease's own message, left in flight).
 * - Events are conditional puts keyed by (job_id, sequence): a retried
 *   publish writes nothing twice.
 * - Retries wait on SQS: a retry's message is sent delayed until its
 *   backoff ends (at most SQS's 15 minutes), and a message received before
 *   its job is due is put back in flight for the rest of the wait; the job
 *   item's not_before_ms, tested by the lease's conditional write, is what
 *   decides (sqs_schedule.ts). An expired lease is recorded as a lost
 *   attempt by the lease that follows it, in the same write.
 * - Items past their TTL count as gone even before DynamoDB deletes them.
 * - A job waiting for dependencies has `waiting_for` and no message yet;
 *   whoever ends a job tells the jobs registered in its `dependents`, and
 *   a read of a waiting job decides it again, so a crash in between heals
 *   (dependencies.ts).
 *
 * This class only delegates: each operation lives in its own module over
 * one shared {@link AwsStoreContext} (enqueue.ts and enqueue_batch.ts,
 * receive.ts, lease_fence.ts, completion.ts, redrive.ts, events.ts,
 * listing.ts, schedules.ts, dependencies.ts); what each lifecycle decision writes is
 * job_updates.ts's.
 *
 * @module
 */
import type { Job, JobEvent, JobResult } from "../../../gen/job/v1/job_pb.ts";
import { type EventLogSource, tailEvents } from "../event_tail.ts";
import type {
  BatchOutcome,
  CompletionInput,
  DequeueOptions,
  EnqueueInput,
  EnqueueResult,
  JobPage,
  JobStore,
  LeasedJob,
  LeaseUpdate,
  ListJobsQuery,
  StoreCapabilities,
  StreamEventsOptions,
} from "../job_store.ts";
import type { ScheduleStore } from "../schedule_store.ts";
import { AWS_MAX_EVENT_BYTES } from "./aws_limits.ts";
import { cancel, complete, completeBatch } from "./completion.ts";
import { enqueue } from "./enqueue.ts";
import { enqueueBatch } from "./enqueue_batch.ts";
import { eventLogSource, publishEvents } from "./events.ts";
import { updateLease } from "./lease_fence.ts";
import { getJob, listJobs } from "./listing.ts";
import { dequeue } from "./receive.ts";
import { redrive } from "./redrive.ts";
import { AwsScheduleStore } from "./schedules.ts";
import { type AwsJobStoreOptions, AwsStoreContext } from "./store_context.ts";

export {
  AWS_MAX_EVENT_BYTES,
  DEFAULT_EVENTS_TTL_MS,
  SQS_MAX_VISIBILITY_SECONDS,
} from "./aws_limits.ts";
export type { AwsJobStoreOptions } from "./store_context.ts";

/** A JobStore on SQS and DynamoDB. */
export class AwsJobStore implements JobStore {
  readonly capabilities: StoreCapabilities = {
    durable: true,
    // SQS long polling returns as soon as a message arrives.
    wakesOnEnqueue: true,
    // Tails on other servers poll the events table.
    pushesEvents: false,
    maxEventBytes: AWS_MAX_EVENT_BYTES,
    // SQS standard queues order messages best-effort only.
    redeliversBeforeNewerWork: false,
    priorityOrder: "bands",
  };

  readonly schedules: ScheduleStore;

  readonly #ctx: AwsStoreContext;
  readonly #eventSource: EventLogSource;

  constructor(options: AwsJobStoreOptions) {
    this.#ctx = new AwsStoreContext(options);
    this.#eventSource = eventLogSource(this.#ctx);
    this.schedules = new AwsScheduleStore(this.#ctx);
  }

  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    this.#ctx.assertOpen();
    return await enqueue(this.#ctx, input);
  }

  async enqueueBatch(inputs: readonly EnqueueInput[]): Promise<BatchOutcome<EnqueueResult>[]> {
    this.#ctx.assertOpen();
    return await enqueueBatch(this.#ctx, inputs);
  }

  async completeBatch(items: readonly CompletionInput[]): Promise<BatchOutcome<boolean>[]> {
    this.#ctx.assertOpen();
    return await completeBatch(this.#ctx, items);
  }

  async dequeue(queue: string, options: DequeueOptions): Promise<LeasedJob[]> {
    this.#ctx.assertOpen();
    return await dequeue(this.#ctx, queue, options);
  }

  async updateLease(
    taskToken: string,
    queue: string,
    visibilityTimeoutMs: number,
  ): Promise<LeaseUpdate> {
    this.#ctx.assertOpen();
    return await updateLease(this.#ctx, taskToken, queue, visibilityTimeoutMs);
  }

  async complete(taskToken: string, result: JobResult): Promise<boolean> {
    this.#ctx.assertOpen();
    return await complete(this.#ctx, taskToken, result);
  }

  async cancel(jobId: string, reason: string): Promise<Job> {
    this.#ctx.assertOpen();
    return await cancel(this.#ctx, jobId, reason);
  }

  async redrive(jobId: string): Promise<Job> {
    this.#ctx.assertOpen();
    return await redrive(this.#ctx, jobId);
  }

  async publishEvents(taskToken: string, events: readonly JobEvent[]): Promise<number> {
    this.#ctx.assertOpen();
    return await publishEvents(this.#ctx, taskToken, events, this.capabilities.maxEventBytes);
  }

  streamEvents(jobId: string, options: StreamEventsOptions): AsyncIterable<JobEvent> {
    return tailEvents(this.#eventSource, jobId, options);
  }

  async getJob(jobId: string): Promise<Job> {
    this.#ctx.assertOpen();
    return await getJob(this.#ctx, jobId);
  }

  async listJobs(query: ListJobsQuery): Promise<JobPage> {
    this.#ctx.assertOpen();
    return await listJobs(this.#ctx, query);
  }

  close(): Promise<void> {
    this.#ctx.close();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
