/**
 * One queue of the memory store and the records it holds: the order jobs
 * are served in (highest priority first; within one priority, work
 * scheduled again first, then new work in enqueue order), the running
 * leases by expiry, and the jobs waiting out a delayed start or a retry's
 * backoff by its end, with the one timer that fires at the earliest of
 * those two. What any of it means for a job is the lifecycle's to decide.
 *
 * @module
 */
import { clone } from "@bufbuild/protobuf";
import { type Job, type JobEvent, JobSchema, JobState } from "../../gen/job/v1/job_pb.ts";
import { type OpenAttempt, runningAttempt } from "./attempt_records.ts";
import type { JobView } from "./lifecycle.ts";
import type { LeaseExpiryTimer } from "./lease_expiry_timer.ts";
import { MinHeap } from "./min_heap.ts";

export interface JobRecord {
  readonly job: Job;
  readonly requestId: string;
  /** Unix ms at which the current lease ends (meaningful while RUNNING). */
  leaseExpiresAt: number;
  /** Highest sequence stored when the current attempt began. */
  sequenceBase: bigint;
  highestSequence: bigint;
  /** Output bytes stored for the job, all attempts (see output_cap.ts). */
  outputBytes: number;
  /** Whether the job's output was cut at the cap (its marker is stored). */
  outputTruncated: boolean;
  readonly events: JobEvent[];
  /** The attempt the current lease opened; job.attempts holds the ended ones. */
  open: OpenAttempt | undefined;
  /** See JobView: the retry counters and the backoff's end (0: none). */
  notBeforeMs: number;
  usedAttempts: number;
  lostAttempts: number;
}

export interface DelayEntry {
  readonly record: JobRecord;
  readonly notBeforeMs: number;
}

export interface LeaseEntry {
  readonly record: JobRecord;
  readonly attempt: number;
  readonly expiresAt: number;
}

/** The waiting jobs of one priority: work scheduled again, then new work in enqueue order. */
class Band {
  /** Jobs handed back, whose lease expired, or whose wait ended; served before `ready`. */
  readonly again: JobRecord[] = [];
  /** Scheduled jobs in enqueue order; entries before `head` are taken. */
  ready: JobRecord[] = [];
  head = 0;

  take(): JobRecord | undefined {
    const again = this.again.shift();
    if (again !== undefined) return again;
    if (this.head >= this.ready.length) return undefined;
    const record = this.ready[this.head++]!;
    if (this.head > 1024 && this.head * 2 > this.ready.length) {
      this.ready = this.ready.slice(this.head);
      this.head = 0;
    }
    return record;
  }
}

/** A queue's records (see the module's doc). */
export class QueueRecord {
  /** Waiting jobs by priority; `#priorities` lists the bands' priorities, highest first. */
  readonly #bands = new Map<number, Band>();
  #priorities: number[] = [];
  /** Running jobs by lease expiry; stale entries are skipped when popped. */
  readonly leases = new MinHeap<LeaseEntry>((e) => e.expiresAt);
  /** Jobs waiting out a delayed start or a retry's backoff, by its end; stale entries are skipped. */
  readonly delayed = new MinHeap<DelayEntry>((e) => e.notBeforeMs);
  /**
   * Fires at the earliest lease expiry or backoff end, so waiting dequeues
   * wake when it passes.
   */
  readonly expiryTimer: LeaseExpiryTimer;

  constructor(
    readonly name: string,
    timer: (earliestExpiry: () => number | null) => LeaseExpiryTimer,
  ) {
    this.expiryTimer = timer(() => this.#earliestDue());
  }

  /** Queues a new job behind the waiting ones of its priority. */
  pushNew(record: JobRecord): void {
    this.#band(record).ready.push(record);
  }

  /** Queues a job scheduled again (or due after a wait) ahead of new work of its priority. */
  pushAgain(record: JobRecord): void {
    this.#band(record).again.push(record);
  }

  /**
   * The next job the queue holds in order: the highest priority first,
   * within one priority work scheduled again first, then FIFO; whether it
   * can be leased is {@link decideLease}'s to say (a job cancelled while it
   * waited stays in the queue, finished).
   */
  takeNext(): JobRecord | undefined {
    for (const priority of this.#priorities) {
      const record = this.#bands.get(priority)!.take();
      if (record !== undefined) return record;
    }
    return undefined;
  }

  #band(record: JobRecord): Band {
    const priority = record.job.jobParams?.priority ?? 0;
    let band = this.#bands.get(priority);
    if (band === undefined) {
      // At most 201 priorities exist (limits.ts), so the list stays short.
      band = new Band();
      this.#bands.set(priority, band);
      this.#priorities = [...this.#bands.keys()].sort((a, b) => b - a);
    }
    return band;
  }

  /** The earliest lease that is still current, dropping superseded entries. */
  liveLease(): LeaseEntry | undefined {
    for (let top = this.leases.peek(); top !== undefined; top = this.leases.peek()) {
      const { record, attempt, expiresAt } = top;
      if (
        record.job.state === JobState.RUNNING && record.job.attempt === attempt &&
        record.leaseExpiresAt === expiresAt
      ) {
        return top;
      }
      this.leases.pop();
    }
    return undefined;
  }

  /** The earliest backoff entry that is still current, dropping stale ones. */
  liveDelay(): DelayEntry | undefined {
    for (let top = this.delayed.peek(); top !== undefined; top = this.delayed.peek()) {
      const { record, notBeforeMs } = top;
      if (record.job.state === JobState.SCHEDULED && record.notBeforeMs === notBeforeMs) {
        return top;
      }
      this.delayed.pop();
    }
    return undefined;
  }

  /** The earliest lease expiry or backoff end, or null when there is neither. */
  #earliestDue(): number | null {
    const lease = this.liveLease()?.expiresAt;
    const due = this.liveDelay()?.notBeforeMs;
    if (lease === undefined) return due ?? null;
    return due === undefined ? lease : Math.min(lease, due);
  }
}

/** A new job's record: nothing leased, stored or counted yet. */
export function newJobRecord(job: Job, requestId: string): JobRecord {
  return {
    job,
    requestId,
    leaseExpiresAt: 0,
    sequenceBase: 0n,
    highestSequence: 0n,
    outputBytes: 0,
    outputTruncated: false,
    events: [],
    open: undefined,
    notBeforeMs: 0,
    usedAttempts: 0,
    lostAttempts: 0,
  };
}

/** What the lifecycle reads of a record. */
export function viewOf(record: JobRecord): JobView {
  const job = record.job;
  return {
    jobId: job.jobId,
    queue: job.queue,
    state: job.state,
    attempt: job.attempt,
    leaseExpiresAtMs: record.leaseExpiresAt,
    cancelReason: job.cancelReason,
    result: job.result,
    retry: job.jobParams?.retry,
    notBeforeMs: record.notBeforeMs,
    usedAttempts: record.usedAttempts,
    lostAttempts: record.lostAttempts,
    failureReason: job.failureReason,
  };
}

/** A copy of the record's job the caller may keep, with its running attempt listed. */
export function copyOf(record: JobRecord): Job {
  const job = clone(JobSchema, record.job);
  if (record.open !== undefined) {
    job.attempts.push(runningAttempt(record.open, record.highestSequence));
  }
  return job;
}
