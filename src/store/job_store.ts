/**
 * The JobStore contract: the one interface every backend (memory, sqlite, aws)
 * implements, and the glossary of the words it uses.
 *
 * Glossary
 * - **job**: a command to run, with its parameters, state and result.
 * - **queue**: a named FIFO of scheduled jobs; workers take from one queue.
 * - **attempt**: one dequeue of a job. Each dequeue starts the next attempt
 *   (1, 2, ...), whether the previous one failed, was handed back or its
 *   lease ran out. Job.attempts lists them: number, worker, times, outcome
 *   and event range (attempt_records.ts).
 * - **retry**: a failed attempt that the job's retry policy tries again; the
 *   job waits SCHEDULED until its not-before time (retry_policy.ts).
 * - **dead letter**: a job FAILED after it used every attempt; `redrive`
 *   puts it back.
 * - **lease**: an attempt's exclusive hold on a running job, until its
 *   visibility timeout passes. A job whose lease expires is scheduled again
 *   and redelivered (at-least-once delivery).
 * - **task token**: the signed proof of a lease. Extending, publishing and
 *   completing need the token of the job's current attempt; any older token is
 *   refused (the fence).
 * - **event**: an entry of a job's log (process start, output, end, ...).
 *   One counter numbers every event of a job, across attempts.
 * - **batch**: one OUTPUT_BATCH event carrying several output chunks; it
 *   takes one sequence number per chunk.
 *
 * What the contract deliberately leaves out: connections, transactions,
 * SQL, SQS and DynamoDB handles, and any notion of a server or of RPC. A
 * backend hides all of them; what differs between backends that callers may
 * depend on is declared as data in {@link StoreCapabilities}.
 *
 * @module
 */
import type { EventType, Job, JobEvent, JobResult } from "../../gen/job/v1/job_pb.ts";
import type {
  EnqueueInput,
  LeasedJob,
  LeaseUpdate,
  ListJobsQuery,
} from "../protocol/job_requests.ts";
import type { ScheduleStore } from "./schedule_store.ts";

export { DEFAULT_CANCEL_REASON } from "../protocol/job_requests.ts";
export type {
  EnqueueInput,
  LeasedJob,
  LeaseUpdate,
  ListJobsQuery,
} from "../protocol/job_requests.ts";

/** What a backend can do; core code and tests branch on these, never on the backend's name. */
export interface StoreCapabilities {
  /** Jobs and events survive a restart of the process. */
  readonly durable: boolean;
  /** A waiting dequeue is woken by the enqueue itself, not by polling. */
  readonly wakesOnEnqueue: boolean;
  /** A live tail is woken by the publish itself, not by polling. */
  readonly pushesEvents: boolean;
  /** Largest event the store accepts, in bytes of its protobuf encoding. */
  readonly maxEventBytes: number;
  /**
   * A job whose lease expired is dequeued before work enqueued after it.
   * SQS standard queues order best-effort only, so the AWS store does not
   * promise this; the embedded stores do.
   */
  readonly redeliversBeforeNewerWork: boolean;
  /**
   * How far JobParams.priority orders a queue: "exact", every priority
   * before the next lower one; "bands", only across the bands above 0, at
   * 0 and below 0 (the AWS store keeps one SQS queue per band; see
   * specs/storage.md).
   */
  readonly priorityOrder: "exact" | "bands";
}

/** The outcome of an enqueue. */
export interface EnqueueResult {
  readonly job: Job;
  /** False when the request_id matched an earlier enqueue and that job was returned. */
  readonly created: boolean;
}

/** One completion of {@link JobStore.completeBatch}. */
export interface CompletionInput {
  readonly taskToken: string;
  readonly result: JobResult;
}

/**
 * The outcome of one item of a batch: its value, or the error that item
 * alone met (the other items are unaffected by it).
 */
export type BatchOutcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: unknown };

/** How to wait for and lease jobs. */
export interface DequeueOptions {
  /** Lease at most this many jobs (>= 1). */
  readonly maxJobs: number;
  /** Lease length in milliseconds (> 0). */
  readonly visibilityTimeoutMs: number;
  /** Ends the wait; the dequeue then resolves with no jobs. */
  readonly signal: AbortSignal;
  /** Longest to wait for work, in milliseconds (no limit when absent). */
  readonly maxWaitMs?: number;
  /** The dequeuing worker's name, recorded in the attempts it starts. */
  readonly workerName?: string;
}

/** Which of a job's events to read. */
export interface StreamEventsOptions {
  /** Only events with a sequence at least this (0n: from the start). */
  readonly fromSequence: bigint;
  /** Only events stamped at or after this Unix millisecond (0: no bound). */
  readonly fromTimestampMs: number;
  /** Only events of these types (empty: every type). */
  readonly eventTypes: ReadonlySet<EventType>;
  /** Ends the stream early (it then throws the signal's reason). */
  readonly signal: AbortSignal;
}

/** One page of jobs, newest first. */
export interface JobPage {
  readonly jobs: Job[];
  /** Number of the last page; at least 1. */
  readonly lastPage: number;
}

/**
 * Where jobs and their events live.
 *
 * Guarantees every backend gives (the conformance suite in
 * tests/store/conformance.ts checks each):
 * - Job ids are UUIDv7; a new job is SCHEDULED; a dequeued job is RUNNING.
 * - Each queue is FIFO (best-effort on SQS); a job whose lease expired is
 *   dequeued again as soon as it expired (no sweep delay), and before newer
 *   work where {@link StoreCapabilities.redeliversBeforeNewerWork} says so.
 * - Enqueue with a non-empty request_id is idempotent.
 * - Only the token of the job's current attempt, while its lease lasts, can
 *   extend, publish or complete; verification is constant time. A lease that
 *   expired is lost at once (the job is SCHEDULED again), even before another
 *   worker dequeues it.
 * - Sequences: a worker numbers its attempt's events 1, 2, 3, ... without
 *   gaps (a batch takes one number per item). The store saves each at the
 *   job's base for that attempt (the highest sequence stored when the
 *   attempt began) plus the worker's number, so sequences increase across
 *   attempts. An event at or below the highest stored sequence is a resend
 *   and is skipped; one that skips ahead or has no number is refused.
 * - Output: a job stores at most the store's `maxJobOutputBytes` of output
 *   over all its attempts; the publish that crosses it stores output up to
 *   the cap, then one marker on stderr; later output is dropped, lifecycle
 *   events are not, and sequences stay gapless (see output_cap.ts).
 * - Stream replay followed by live tail has no gap and no duplicate, honours
 *   the same filter in both, and ends once the job is finished and every
 *   stored event has been delivered.
 * - Completing again with the token of the attempt that completed the job
 *   and the same result is a resend: it succeeds and changes nothing.
 * - Retries: a failed attempt the policy retries leaves the job SCHEDULED
 *   with not_before set; no dequeue leases it earlier, and a waiting dequeue
 *   is woken when it is due. A lost lease counts as an attempt. When another
 *   attempt follows a failed or lost one, the store appends an ATTEMPT_END
 *   event after the attempt's own events.
 * - Dependencies (JobParams.after, after_any; rules in dependencies.ts):
 *   enqueue refuses one that does not exist (InvalidArgumentError naming
 *   `job_params.after[i]`) and stores nothing; a job whose dependencies
 *   have not ended as needed is SCHEDULED with Job.waiting_for naming them,
 *   and no dequeue leases it; once they have, it joins its queue (after its
 *   delayed start, if any). When a job of `after` ends FAILED or CANCELLED,
 *   the dependent ends CANCELLED at once with the reason, and its own
 *   dependents follow. A lost lease is no end. Where a released dependent
 *   goes among the jobs of its queue that were enqueued after it is not
 *   promised (SQLite keeps its place by id; memory and AWS put it last).
 * - Batches (enqueueBatch, completeBatch) do for each item exactly what the
 *   single call does and answer per item, in order; one item's failure does
 *   not stop the others.
 * - Every method that returns a Job returns a copy the caller may keep.
 */
export interface JobStore extends AsyncDisposable {
  /** What this backend can do. */
  readonly capabilities: StoreCapabilities;

  /** The cron schedules kept with these jobs (see schedule_store.ts). */
  readonly schedules: ScheduleStore;

  /** Adds a SCHEDULED job to `input.queue`, or returns the job an earlier call with the same request_id made. */
  enqueue(input: EnqueueInput): Promise<EnqueueResult>;

  /**
   * Enqueues every input as {@link enqueue} would, in order, and answers
   * each. The embedded stores write a batch in one transaction; the AWS
   * store in batched calls.
   */
  enqueueBatch(inputs: readonly EnqueueInput[]): Promise<BatchOutcome<EnqueueResult>[]>;

  /**
   * Waits until `queue` has a job, then leases up to `maxJobs` of them, each
   * starting a new attempt. Resolves with no jobs once `signal` aborts.
   */
  dequeue(queue: string, options: DequeueOptions): Promise<LeasedJob[]>;

  /**
   * Sets the lease to end `visibilityTimeoutMs` from now; 0 hands the job
   * back at once (it is SCHEDULED again for the next dequeue, or CANCELLED
   * if a cancel was asked for). Says whether the job has been cancelled.
   */
  updateLease(
    taskToken: string,
    queue: string,
    visibilityTimeoutMs: number,
  ): Promise<LeaseUpdate>;

  /**
   * Records `result` and ends the lease: the job ends CANCELLED when a
   * cancel was asked for, else COMPLETED when `result.success`; a failure
   * is retried after its backoff when the job's retry policy allows it,
   * else the job ends FAILED. Resolves true when this call recorded the result, false when
   * it was a resend of the result already recorded (which changes nothing),
   * so that a completion is counted once however often it was sent.
   */
  complete(taskToken: string, result: JobResult): Promise<boolean>;

  /** Completes every item as {@link complete} would, in order, and answers each. */
  completeBatch(items: readonly CompletionInput[]): Promise<BatchOutcome<boolean>[]>;

  /**
   * Cancels a job. A SCHEDULED job becomes CANCELLED at once and is never
   * dequeued; a RUNNING one is marked, its lease holder learns it at its
   * next extension, and it becomes CANCELLED when completed, handed back or
   * when its lease runs out. Returns the job after the cancel; cancelling a
   * running job again is harmless.
   * @throws {JobFinishedError} when the job has already finished.
   */
  cancel(jobId: string, reason: string): Promise<Job>;

  /**
   * Puts a dead letter (a job FAILED after using every attempt: failure
   * reason "exhausted" or "worker_lost") back in its queue, SCHEDULED and
   * due at once, with a fresh retry budget; its id, attempts and events
   * stay. Returns the job after it.
   * @throws {JobNotRedrivableError} for any other job.
   */
  redrive(jobId: string): Promise<Job>;

  /**
   * Appends events to the log of the job the token leases (see the sequence
   * rules above); returns how many were stored (resends are not).
   */
  publishEvents(taskToken: string, events: readonly JobEvent[]): Promise<number>;

  /**
   * Replays a job's events, then tails new ones; ends once the job is
   * finished and all are delivered. Throws `options.signal`'s reason when it
   * aborts before that.
   */
  streamEvents(jobId: string, options: StreamEventsOptions): AsyncIterable<JobEvent>;

  /** Returns one job. */
  getJob(jobId: string): Promise<Job>;

  /** Returns one page of jobs, newest first. */
  listJobs(query: ListJobsQuery): Promise<JobPage>;

  /** Releases the store's resources and wakes every waiter; idempotent. */
  close(): Promise<void>;
}
