/**
 * The in-memory JobStore: fast, and gone when the process exits. Meant for
 * tests, benchmarks and throwaway runs (`--store memory`).
 *
 * @module
 */
import { MemoryDependents, statusOfJob } from "./memory_dependencies.ts";
import { copyOf, newJobRecord, viewOf } from "./memory_queue.ts";
import { type DependencyVerdict, missingDependency } from "./dependencies.ts";
import { MemoryScheduleStore } from "./memory_schedules.ts";
import type { ScheduleStore } from "./schedule_store.ts";
import { metadataMatches, ownerAndTimeMatch } from "../protocol/job_requests.ts";
import { millis } from "../protocol/timestamp_ms.ts";
import { settleEachSync } from "./batch.ts";
import { clone, create, equals } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type ExecutionConfig,
  ExecutionConfigSchema,
  type Job,
  type JobEvent,
  JobParamsSchema,
  type JobResult,
  JobSchema,
} from "../../gen/job/v1/job_pb.ts";
import { type Clock, systemClock } from "../clock.ts";
import { JobNotFoundError, StoreClosedError } from "./errors.ts";
import { sequenceEvents } from "../protocol/event_sequencing.ts";
import { lastSequenceOf } from "../protocol/event_position.ts";
import { type EventLogSource, tailEvents } from "./event_tail.ts";
import { isFinished } from "../protocol/job_state.ts";
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
} from "./job_store.ts";
import {
  type AttemptEnd,
  decideCancel,
  decideCompletion,
  decideEnqueue,
  decideExpiry,
  decideExtend,
  decideLease,
  decidePublish,
  decideRedrive,
  type Finish,
  type Lease,
  type Release,
  type Reschedule,
} from "./lifecycle.ts";
import { appendAttempt, closedAttempt, countAttemptEnd, noticeEvent } from "./attempt_records.ts";
import { LeaseExpiryTimer } from "./lease_expiry_timer.ts";
import { type JobRecord, QueueRecord } from "./memory_queue.ts";
import { capOutput, DEFAULT_MAX_JOB_OUTPUT_BYTES } from "./output_cap.ts";
import { Notifier } from "./notifier.ts";
import { TaskTokenCodec } from "./task_token.ts";
import { UuidV7Generator } from "./uuid_v7.ts";

/** Options of {@link MemoryJobStore}. */
export interface MemoryJobStoreOptions {
  readonly clock?: Clock;
  /** Signs task tokens; a random secret by default. */
  readonly tokenCodec?: TaskTokenCodec;
  /** Most output bytes a job stores, all attempts together; 0: no cap (default 256 MiB). */
  readonly maxJobOutputBytes?: number;
}

/** Largest event the embedded stores accept (1 MiB). */
export const EMBEDDED_MAX_EVENT_BYTES = 1024 * 1024;

/** A JobStore that keeps everything in this process's memory. */
export class MemoryJobStore implements JobStore {
  readonly capabilities: StoreCapabilities = {
    durable: false,
    wakesOnEnqueue: true,
    pushesEvents: true,
    maxEventBytes: EMBEDDED_MAX_EVENT_BYTES,
    redeliversBeforeNewerWork: true,
    priorityOrder: "exact",
  };
  readonly schedules: ScheduleStore;

  readonly #clock: Clock;
  readonly #tokens: TaskTokenCodec;
  readonly #maxJobOutputBytes: number;
  readonly #ids = new UuidV7Generator();
  readonly #jobs = new Map<string, JobRecord>();
  /** Every job in creation order, for listing. */
  readonly #order: JobRecord[] = [];
  readonly #byRequestId = new Map<string, JobRecord>();
  readonly #dependents = new MemoryDependents<JobRecord>((id) =>
    statusOfJob(this.#jobs.get(id)?.job)
  );
  /** Dependents decided after a job ended, not yet placed (see #finish). */
  readonly #decided: { record: JobRecord; verdict: DependencyVerdict }[] = [];
  #placing = false;
  readonly #queues = new Map<string, QueueRecord>();
  readonly #queueWaiters: Notifier<string>;
  readonly #jobWatchers: Notifier<string>;
  #closed = false;
  #lastConfig: ExecutionConfig | undefined;

  constructor(options: MemoryJobStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#tokens = options.tokenCodec ?? TaskTokenCodec.withRandomSecret();
    this.#maxJobOutputBytes = options.maxJobOutputBytes ?? DEFAULT_MAX_JOB_OUTPUT_BYTES;
    this.#queueWaiters = new Notifier(this.#clock);
    this.#jobWatchers = new Notifier(this.#clock);
    this.schedules = new MemoryScheduleStore(this.#clock, () => this.#assertOpen());
  }

  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    this.#assertOpen();
    return this.#enqueueOne(input);
  }

  async enqueueBatch(inputs: readonly EnqueueInput[]): Promise<BatchOutcome<EnqueueResult>[]> {
    this.#assertOpen();
    return settleEachSync(inputs, (input) => this.#enqueueOne(input));
  }

  #enqueueOne(input: EnqueueInput): EnqueueResult {
    const existing = input.requestId === "" ? undefined : this.#byRequestId.get(input.requestId);
    const now = this.#clock.now();
    const decision = decideEnqueue(
      existing === undefined ? undefined : {
        jobId: existing.job.jobId,
        queue: existing.job.queue,
        params: existing.job.jobParams!,
      },
      input,
      now,
    );
    if (decision.kind === "existing") {
      return { job: copyOf(existing!), created: false };
    }
    missingDependency(input.params, (id) => this.#jobs.has(id));
    const stamp = timestampFromMs(now);
    const record = newJobRecord(
      create(JobSchema, {
        jobId: this.#ids.next(now),
        jobParams: clone(JobParamsSchema, input.params),
        state: decision.state,
        createdAt: stamp,
        updatedAt: stamp,
        executionConfig: this.#sharedConfig(input.executionConfig),
        queue: input.queue,
        attempt: decision.attempt,
      }),
      input.requestId,
    );
    this.#jobs.set(record.job.jobId, record);
    this.#order.push(record);
    if (input.requestId !== "") this.#byRequestId.set(input.requestId, record);
    if (decision.notBeforeMs > 0) {
      record.notBeforeMs = decision.notBeforeMs;
      record.job.notBefore = timestampFromMs(decision.notBeforeMs);
    }
    this.#placeByDependencies(record, this.#dependents.decide(record), now);
    return { job: copyOf(record), created: true };
  }

  /**
   * Puts a new job, or one whose dependency ended, where its dependencies
   * say: in its queue (after its delayed start), cancelled, or nowhere yet.
   */
  #placeByDependencies(record: JobRecord, verdict: DependencyVerdict, now: number): void {
    if (verdict.kind === "wait") return;
    if (verdict.kind === "cancel") {
      const decision = decideCancel(viewOf(record), { reason: verdict.reason }, now);
      record.job.cancelReason = decision.cancelReason;
      if (decision.kind === "finish") this.#finish(record, decision, now);
      return;
    }
    const queue = this.#queue(record.job.queue);
    if (record.notBeforeMs > now) {
      // A delayed start waits as a retry's backoff does, then goes ahead of newer work.
      queue.delayed.push({ record, notBeforeMs: record.notBeforeMs });
      queue.expiryTimer.arm(record.notBeforeMs);
    } else {
      queue.pushNew(record);
      this.#queueWaiters.notify(queue.name, 1);
    }
  }

  async dequeue(queueName: string, options: DequeueOptions): Promise<LeasedJob[]> {
    const { maxJobs, visibilityTimeoutMs, signal } = options;
    const deadline = options.maxWaitMs === undefined
      ? undefined
      : this.#clock.now() + options.maxWaitMs;
    while (!this.#closed) {
      const queue = this.#queue(queueName);
      const now = this.#clock.now();
      this.#reclaimExpired(queue, now);
      const leased: LeasedJob[] = [];
      for (let record = queue.takeNext(); record !== undefined;) {
        const decision = decideLease(viewOf(record), { visibilityTimeoutMs }, now);
        if (decision.kind === "lease") {
          leased.push(this.#lease(queue, record, decision, options.workerName ?? "", now));
          if (leased.length >= maxJobs) break;
        } else if (decision.kind === "finish") {
          this.#finish(record, decision, now);
        } else if (decision.reason === "not_due") {
          queue.delayed.push({ record, notBeforeMs: record.notBeforeMs });
        }
        record = queue.takeNext();
      }
      if (leased.length > 0) {
        queue.expiryTimer.arm();
        return leased;
      }
      if (signal.aborted || (deadline !== undefined && now >= deadline)) break;
      // Woken by an enqueue, a hand-back, a lease expiry (the queue's
      // expiryTimer), close, or the end of the wait.
      await this.#queueWaiters.wait(queueName, {
        signal,
        ...(deadline === undefined ? {} : { timeoutMs: deadline - now }),
      });
    }
    return [];
  }

  async updateLease(
    taskToken: string,
    queue: string,
    visibilityTimeoutMs: number,
  ): Promise<LeaseUpdate> {
    this.#assertOpen();
    const claims = this.#tokens.verify(taskToken);
    const { record, now } = this.#settledRecord(claims.jobId);
    const decision = decideExtend(viewOf(record), claims, { queue, visibilityTimeoutMs }, now);
    const queueRecord = this.#queue(record.job.queue);
    if (decision.kind === "handBack") {
      this.#release(queueRecord, record, decision.release, now);
    } else {
      record.leaseExpiresAt = decision.leaseExpiresAtMs;
      queueRecord.leases.push({
        record,
        attempt: record.job.attempt,
        expiresAt: record.leaseExpiresAt,
      });
      queueRecord.expiryTimer.arm();
    }
    return { cancelled: decision.cancelled };
  }

  async complete(taskToken: string, result: JobResult): Promise<boolean> {
    this.#assertOpen();
    return this.#completeOne(taskToken, result);
  }

  async completeBatch(items: readonly CompletionInput[]): Promise<BatchOutcome<boolean>[]> {
    this.#assertOpen();
    return settleEachSync(items, (item) => this.#completeOne(item.taskToken, item.result));
  }

  /** Records one result; false when the call was a resend of the recorded one. */
  #completeOne(taskToken: string, result: JobResult): boolean {
    const claims = this.#tokens.verify(taskToken);
    const { record, now } = this.#settledRecord(claims.jobId);
    const decision = decideCompletion(viewOf(record), claims, result, now);
    if (decision.kind === "resend") return false;
    this.#release(this.#queue(record.job.queue), record, decision, now);
    return true;
  }

  async cancel(jobId: string, reason: string): Promise<Job> {
    this.#assertOpen();
    const { record, now } = this.#settledRecord(jobId);
    const job = record.job;
    const decision = decideCancel(viewOf(record), { reason }, now);
    if (decision.newReason) job.cancelReason = decision.cancelReason;
    job.updatedAt = timestampFromMs(now);
    if (decision.kind === "finish") this.#finish(record, decision, now);
    return copyOf(record);
  }

  async redrive(jobId: string): Promise<Job> {
    this.#assertOpen();
    const { record, now } = this.#settledRecord(jobId);
    const decision = decideRedrive(viewOf(record), now);
    const job = record.job;
    job.state = decision.state;
    job.result = undefined;
    job.failureReason = "";
    job.notBefore = undefined;
    job.updatedAt = timestampFromMs(now);
    record.notBeforeMs = 0;
    record.usedAttempts = decision.usedAttempts;
    record.lostAttempts = decision.lostAttempts;
    const queue = this.#queue(job.queue);
    queue.pushAgain(record);
    this.#queueWaiters.notify(queue.name, 1);
    return copyOf(record);
  }

  async publishEvents(taskToken: string, events: readonly JobEvent[]): Promise<number> {
    this.#assertOpen();
    const claims = this.#tokens.verify(taskToken);
    const { record, now } = this.#settledRecord(claims.jobId);
    decidePublish(viewOf(record), claims, now);
    const state = {
      base: record.sequenceBase,
      highest: record.highestSequence,
      storedBytes: record.outputBytes,
      truncated: record.outputTruncated,
    };
    const capped = capOutput(
      sequenceEvents(events, state, now, this.capabilities.maxEventBytes),
      state,
      this.#maxJobOutputBytes,
    );
    // Output dropped at the cap stores nothing but still moves the base.
    record.sequenceBase = capped.base;
    record.outputBytes = capped.storedBytes;
    record.outputTruncated = capped.truncated;
    if (capped.events.length === 0) return 0;
    record.events.push(...capped.events);
    record.highestSequence = capped.highest;
    this.#jobWatchers.notify(record.job.jobId);
    return capped.events.length;
  }

  streamEvents(jobId: string, options: StreamEventsOptions): AsyncIterable<JobEvent> {
    return tailEvents(this.#eventSource, jobId, options);
  }

  async getJob(jobId: string): Promise<Job> {
    this.#assertOpen();
    return copyOf(this.#settledRecord(jobId).record);
  }

  async listJobs(query: ListJobsQuery): Promise<JobPage> {
    this.#assertOpen();
    const now = this.#clock.now();
    for (const queue of this.#queues.values()) this.#reclaimExpired(queue, now);
    const first = (query.page - 1) * query.pageSize;
    const jobs: Job[] = [];
    let matched = 0;
    for (let i = this.#order.length - 1; i >= 0; i--) {
      const record = this.#order[i]!;
      const job = record.job;
      if (query.queue !== undefined && job.queue !== query.queue) continue;
      if (query.state !== undefined && job.state !== query.state) continue;
      if (!metadataMatches(job.jobParams?.metadata, query.metadata)) continue;
      if (!ownerAndTimeMatch(job.jobParams?.owner ?? "", millis(job.createdAt) ?? 0, query)) {
        continue;
      }
      if (matched >= first && jobs.length < query.pageSize) jobs.push(copyOf(record));
      matched++;
    }
    return { jobs, lastPage: Math.max(1, Math.ceil(matched / query.pageSize)) };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const queue of this.#queues.values()) queue.expiryTimer.close();
    this.#queueWaiters.notifyAll();
    this.#jobWatchers.notifyAll();
    return;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  readonly #eventSource: EventLogSource = {
    readEvents: async (jobId, fromSequence, limit) => {
      this.#assertOpen();
      const events = this.#record(jobId).events;
      // Binary search for the first event that ends at or after fromSequence.
      let lo = 0;
      let hi = events.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (lastSequenceOf(events[mid]!) < fromSequence) lo = mid + 1;
        else hi = mid;
      }
      // Stored events are never mutated, so readers share them.
      return events.slice(lo, lo + limit);
    },
    isFinished: async (jobId) => {
      this.#assertOpen();
      return isFinished(this.#record(jobId).job.state);
    },
    waitForChange: (jobId, signal) => this.#jobWatchers.wait(jobId, { signal }),
  };

  /**
   * Jobs almost always carry the server's one execution config; they share
   * one stored copy of it (stored jobs are never changed in place and every
   * job handed out is a copy) instead of holding one each.
   */
  #sharedConfig(config: ExecutionConfig): ExecutionConfig {
    if (
      this.#lastConfig === undefined || !equals(ExecutionConfigSchema, this.#lastConfig, config)
    ) {
      this.#lastConfig = clone(ExecutionConfigSchema, config);
    }
    return this.#lastConfig;
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }

  #record(jobId: string): JobRecord {
    const record = this.#jobs.get(jobId);
    if (record === undefined) throw new JobNotFoundError(jobId);
    return record;
  }

  /**
   * The record of `jobId` and the time it was read at, with every lease of
   * its queue that ran out by then ended (so it is as of that time).
   */
  #settledRecord(jobId: string): { record: JobRecord; now: number } {
    const record = this.#record(jobId);
    const now = this.#clock.now();
    this.#reclaimExpired(this.#queue(record.job.queue), now);
    return { record, now };
  }

  #queue(name: string): QueueRecord {
    const existing = this.#queues.get(name);
    if (existing !== undefined) return existing;
    const queue: QueueRecord = new QueueRecord(name, (earliestExpiry) =>
      new LeaseExpiryTimer({
        clock: this.#clock,
        earliestExpiry,
        reclaim: (now) => this.#reclaimExpired(queue, now),
        // Reclaiming in memory fails only by a bug: let it surface, unhandled.
        onError: (error) => {
          throw error;
        },
      }));
    // A queue first named after close never arms its timer.
    if (this.#closed) queue.expiryTimer.close();
    this.#queues.set(name, queue);
    return queue;
  }

  /** Persists a lease the lifecycle decided and signs its token. */
  #lease(
    queue: QueueRecord,
    record: JobRecord,
    lease: Lease,
    worker: string,
    now: number,
  ): LeasedJob {
    const job = record.job;
    if (lease.lost !== undefined) this.#rescheduled(record, lease.lost, now);
    job.attempt = lease.attempt;
    job.notBefore = undefined;
    record.notBeforeMs = 0;
    job.state = lease.state;
    job.updatedAt = timestampFromMs(now);
    record.leaseExpiresAt = lease.leaseExpiresAtMs;
    record.sequenceBase = record.highestSequence;
    record.open = {
      number: lease.attempt,
      worker,
      startedAtMs: now,
      sequenceBase: record.sequenceBase,
    };
    queue.leases.push({ record, attempt: job.attempt, expiresAt: record.leaseExpiresAt });
    const taskToken = this.#tokens.sign({
      jobId: job.jobId,
      queue: job.queue,
      attempt: job.attempt,
    });
    return { job: copyOf(record), taskToken };
  }

  /**
   * Ends every lease of `queue` that has run out by `now` as the lifecycle
   * decides, and moves every job whose backoff ended by then into the queue.
   */
  #reclaimExpired(queue: QueueRecord, now: number): void {
    for (let top = queue.liveDelay(); top !== undefined; top = queue.liveDelay()) {
      if (top.notBeforeMs > now) break;
      queue.delayed.pop();
      queue.pushAgain(top.record);
      this.#queueWaiters.notify(queue.name, 1);
    }
    for (let top = queue.liveLease(); top !== undefined; top = queue.liveLease()) {
      const decision = decideExpiry(viewOf(top.record), now);
      // The heap's earliest live lease still lasts, and so do all the others.
      if (decision.kind === "keep") return;
      queue.leases.pop();
      this.#release(queue, top.record, decision, now);
    }
  }

  /** Persists a finish the lifecycle decided: the job's final state and result. */
  #finish(record: JobRecord, finish: Finish, now: number): void {
    const job = record.job;
    if (finish.attemptEnd !== undefined) this.#endAttempt(record, finish.attemptEnd);
    job.state = finish.state;
    job.result = finish.result;
    job.failureReason = finish.failureReason;
    job.notBefore = undefined;
    job.waitingFor = [];
    job.updatedAt = timestampFromMs(now);
    record.leaseExpiresAt = 0;
    record.notBeforeMs = 0;
    countAttemptEnd(finish);
    this.#jobWatchers.notify(job.jobId);
    // A worklist, not recursion: a cancel down a chain of thousands of jobs
    // finishes each in turn instead of nesting a call per link.
    this.#decided.push(...this.#dependents.ended(job.jobId));
    if (this.#placing) return;
    this.#placing = true;
    try {
      for (let next = this.#decided.shift(); next !== undefined; next = this.#decided.shift()) {
        this.#placeByDependencies(next.record, next.verdict, now);
      }
    } finally {
      this.#placing = false;
    }
  }

  /** Records the end of the open attempt in the job's attempt list. */
  #endAttempt(record: JobRecord, end: AttemptEnd): void {
    const closed = closedAttempt(record.open, end, record.highestSequence, record.sequenceBase);
    record.job.attempts = appendAttempt(record.job.attempts, closed);
    record.open = undefined;
  }

  /**
   * Persists the state part of a reschedule (the ended attempt, its notice,
   * the counters and backoff); where the job waits is the caller's.
   */
  #rescheduled(record: JobRecord, reschedule: Reschedule, now: number): void {
    this.#endAttempt(record, reschedule.attemptEnd);
    if (reschedule.notice !== undefined) {
      record.highestSequence += 1n;
      record.events.push(noticeEvent(reschedule.notice, record.highestSequence, now));
      this.#jobWatchers.notify(record.job.jobId);
    }
    const job = record.job;
    job.state = reschedule.state;
    job.updatedAt = timestampFromMs(now);
    job.notBefore = reschedule.notBeforeMs > 0
      ? timestampFromMs(reschedule.notBeforeMs)
      : undefined;
    record.notBeforeMs = reschedule.notBeforeMs;
    record.usedAttempts = reschedule.usedAttempts;
    record.lostAttempts = reschedule.lostAttempts;
    record.leaseExpiresAt = 0;
    countAttemptEnd(reschedule);
  }

  /**
   * Persists the end of a lease the lifecycle decided: the job SCHEDULED
   * again, ahead of newer work (waking one waiting dequeue), or finished.
   */
  #release(queue: QueueRecord, record: JobRecord, release: Release, now: number): void {
    if (release.kind === "finish") {
      this.#finish(record, release, now);
      return;
    }
    this.#rescheduled(record, release, now);
    if (release.notBeforeMs > now) {
      queue.delayed.push({ record, notBeforeMs: release.notBeforeMs });
      queue.expiryTimer.arm(release.notBeforeMs);
      return;
    }
    queue.pushAgain(record);
    this.#queueWaiters.notify(queue.name, 1);
  }
}
