/**
 * The SQLite JobStore (`node:sqlite`, built into Deno): the durable
 * single-host default. Every write is one transaction, committed before the
 * call returns. The database runs in WAL mode with synchronous=NORMAL: a
 * commit is in the WAL file (the OS holds it) when it returns, so a server
 * killed with kill -9 loses nothing it acknowledged; only an OS crash or
 * power cut can lose the last commits since the WAL was last synced. Waiting
 * dequeues and live tails are woken in process by the writes themselves.
 *
 * @module
 */
import { settleEachSync } from "../batch.ts";
import { clone, create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import {
  ExecutionConfigSchema,
  type Job,
  type JobEvent,
  JobParamsSchema,
  type JobResult,
  JobSchema,
  JobState,
} from "../../../gen/job/v1/job_pb.ts";
import { type Clock, systemClock } from "../../clock.ts";
import { JobNotFoundError, StoreClosedError, StoreFullError } from "../errors.ts";
import { type DiskNotice, DiskWatch } from "../disk_errors.ts";
import { preparePrivateDatabase } from "../private_files.ts";
import { sequenceEvents } from "../../protocol/event_sequencing.ts";
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
import {
  decideCancel,
  decideCompletion,
  decideEnqueue,
  decideExpiry,
  decideExtend,
  decideLease,
  decidePublish,
  decideRedrive,
  type Finish,
  type JobView,
  type Release,
} from "../lifecycle.ts";
import { EMBEDDED_MAX_EVENT_BYTES } from "../memory_store.ts";
import { countAttemptEnd } from "../attempt_records.ts";
import { Notifier } from "../notifier.ts";
import { capOutput, DEFAULT_MAX_JOB_OUTPUT_BYTES } from "../output_cap.ts";
import type { TaskTokenCodec } from "../task_token.ts";
import { UuidV7Generator } from "../uuid_v7.ts";
import { jobFromRow, type JobRow, listingFilter, viewOfRow, type ViewRow } from "./job_rows.ts";
import { openDatabase } from "./open_database.ts";
import { deleteFinishedBefore, retainLoop } from "./retention.ts";
import { LeaseExpiryTimer } from "../lease_expiry_timer.ts";
import { SqlRunner } from "./sql_runner.ts";
import { EncodedConfigCache } from "./encoded_config_cache.ts";
import { SQL, writeFinish, writeNewJob, writeRedrive, writeReschedule } from "./job_statements.ts";
import { appendEvents, sqliteEventSource } from "./sqlite_events.ts";
import { SqliteScheduleStore } from "./sqlite_schedules.ts";
import { joinsQueue, SqliteDependencies, wakeDependents } from "./sqlite_dependencies.ts";
import type { ScheduleStore } from "../schedule_store.ts";

export { listingFilter } from "./job_rows.ts";

/** Options of {@link SqliteJobStore.open}. */
export interface SqliteJobStoreOptions {
  /** The database file. */
  readonly path: string;
  readonly tokenCodec: TaskTokenCodec;
  readonly clock?: Clock;
  /** Most output bytes a job stores, all attempts together; 0: no cap (default 256 MiB). */
  readonly maxJobOutputBytes?: number;
  /** Finished jobs older than this are deleted with their events; 0 keeps them (default 30 days). */
  readonly retentionMs?: number;
  /** How often the retention sweep runs (default 60 s). */
  readonly retentionIntervalMs?: number;
  /**
   * Told about errors no call ends with: of background work (the retention
   * sweep, which retries next interval) and of a ROLLBACK after a failed write.
   */
  readonly onBackgroundError?: (error: unknown) => void;
  /** Called once the database is closed (to release what the opener holds). */
  readonly onClose?: () => void;
  /**
   * Told when the disk turns full and when it takes writes again (once per
   * turn), and when the files' modes were tightened at open; for the log.
   */
  readonly onDiskNotice?: (notice: DiskNotice) => void;
  /** A write the disk refused before the store opened (the opener's own), so the store starts refusing. */
  readonly diskRefusedAtStart?: unknown;
}

/** Default retention of finished jobs: 30 days. */
export const DEFAULT_RETENTION_MS = 30 * 24 * 3600 * 1000;

/** A JobStore in one SQLite file. */
export class SqliteJobStore implements JobStore {
  readonly capabilities: StoreCapabilities = {
    durable: true,
    wakesOnEnqueue: true,
    pushesEvents: true,
    maxEventBytes: EMBEDDED_MAX_EVENT_BYTES,
    redeliversBeforeNewerWork: true,
    priorityOrder: "exact",
  };
  readonly schedules: ScheduleStore;

  readonly #db: DatabaseSync;
  readonly #run: SqlRunner;
  readonly #clock: Clock;
  readonly #tokens: TaskTokenCodec;
  readonly #maxJobOutputBytes: number;
  readonly #ids = new UuidV7Generator();
  readonly #configs = new EncodedConfigCache();
  readonly #dependencies: SqliteDependencies;
  /** The id the next inserted job gets (one above the highest, as SQLite would pick). */
  #nextRowId: number;
  readonly #queueWaiters: Notifier<string>;
  readonly #jobWatchers: Notifier<string>;
  readonly #eventSource: EventLogSource;
  readonly #stopped = new AbortController();
  readonly #expiryTimer: LeaseExpiryTimer;
  readonly #retention: Promise<void>;
  readonly #onError: (error: unknown) => void;
  readonly #onClose: () => void;
  #closed = false;

  private constructor(db: DatabaseSync, options: SqliteJobStoreOptions, disk: DiskWatch) {
    this.#db = db;
    this.#onError = options.onBackgroundError ?? (() => {});
    this.#run = new SqlRunner(db, disk, this.#onError);
    this.#dependencies = new SqliteDependencies(this.#run);
    this.#clock = options.clock ?? systemClock;
    this.#tokens = options.tokenCodec;
    this.#maxJobOutputBytes = options.maxJobOutputBytes ?? DEFAULT_MAX_JOB_OUTPUT_BYTES;
    this.#queueWaiters = new Notifier(this.#clock);
    this.#jobWatchers = new Notifier(this.#clock);
    this.#eventSource = sqliteEventSource(this.#run, () => this.#assertOpen(), this.#jobWatchers);
    this.#onClose = options.onClose ?? (() => {});
    this.schedules = new SqliteScheduleStore(this.#run, this.#clock, () => this.#assertOpen());
    this.#nextRowId = (db.prepare("SELECT COALESCE(MAX(id), 0) + 1 AS next FROM jobs").get() as {
      next: number;
    }).next;
    this.#expiryTimer = new LeaseExpiryTimer({
      clock: this.#clock,
      // The earliest lease expiry or backoff end: both are due work.
      earliestExpiry: () => {
        const lease =
          (this.#run.sql(SQL.earliestLeaseExpiry).get() as { next: number | null }).next;
        const due = (this.#run.sql(SQL.earliestDue).get() as { next: number | null }).next;
        if (lease === null) return due;
        return due === null ? lease : Math.min(lease, due);
      },
      reclaim: (now) => this.#reclaimExpired(now),
      onError: this.#onError,
    });
    // Leases that ran out, and backoffs that ended, while the server was down are due now.
    this.#expiryTimer.arm();
    const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
    this.#retention = retentionMs > 0
      ? retainLoop({
        clock: this.#clock,
        retentionMs,
        intervalMs: options.retentionIntervalMs ?? 60_000,
        signal: this.#stopped.signal,
        deleteBatch: (cutoffMs) => this.deleteFinishedBefore(cutoffMs),
        onError: this.#onError,
      })
      : Promise.resolve();
  }

  /**
   * Opens (creating or migrating) the database at `options.path`. On a full
   * disk it opens all the same when the database exists and needs no
   * migration: reads work, writes fail with StoreFullError until space is
   * freed.
   * @throws {StoreFullError} when the disk has no room for a new or migrated database.
   */
  static open(options: SqliteJobStoreOptions): SqliteJobStore {
    const notify = options.onDiskNotice ?? (() => {});
    const disk = new DiskWatch(dirname(options.path), notify);
    let tightened;
    try {
      tightened = preparePrivateDatabase(options.path);
    } catch (error) {
      throw disk.translate(error);
    }
    if (tightened.length > 0) notify({ kind: "modes_tightened", files: tightened });
    const db = openDatabase(options.path, disk);
    // After the open, whose own refusal (if any) says more.
    if (options.diskRefusedAtStart !== undefined) disk.refused(options.diskRefusedAtStart);
    return new SqliteJobStore(db, options, disk);
  }

  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    this.#assertOpen();
    const now = this.#clock.now();
    const result = this.#run.transaction(() => this.#insertJob(input, now));
    if (joinsQueue(result)) this.#queueWaiters.notify(input.queue, 1);
    return result;
  }

  async enqueueBatch(inputs: readonly EnqueueInput[]): Promise<BatchOutcome<EnqueueResult>[]> {
    this.#assertOpen();
    const now = this.#clock.now();
    // One transaction (one WAL commit) for the whole batch; an item that
    // fails throws before it writes anything, so the others still commit.
    const outcomes = this.#run.transaction(() =>
      settleEachSync(inputs, (input) => this.#insertJob(input, now))
    );
    inputs.forEach((input, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok && joinsQueue(outcome.value)) this.#queueWaiters.notify(input.queue, 1);
    });
    return outcomes;
  }

  /** Inserts one job (or finds the one its request_id made); runs inside a transaction. */
  #insertJob(input: EnqueueInput, now: number): EnqueueResult {
    const existing = input.requestId === ""
      ? undefined
      : this.#run.sql(SQL.byRequestId).get(input.requestId) as JobRow | undefined;
    const decision = decideEnqueue(
      existing === undefined ? undefined : {
        jobId: existing.job_id,
        queue: existing.queue,
        params: fromBinary(JobParamsSchema, existing.params),
      },
      input,
      now,
    );
    if (decision.kind === "existing") return { job: jobFromRow(existing!), created: false };
    const verdict = this.#dependencies.decideNew(input.params);
    const jobId = this.#ids.next(now);
    const delayed = decision.notBeforeMs > 0;
    // The row id is chosen here, so the row is written whole in one statement.
    const id = this.#nextRowId++;
    const executionConfig = this.#configs.bytesOf(input.executionConfig);
    const waitingFor = verdict.kind === "wait" ? verdict.waitingFor : [];
    writeNewJob(this.#run, { id, jobId, executionConfig, waitingFor }, input, decision, now);
    if (this.#dependencies.placeNew({ id, jobId }, verdict, now)) {
      return { job: jobFromRow(this.#row(jobId)), created: true };
    }
    if (delayed && waitingFor.length === 0) this.#expiryTimer.arm(decision.notBeforeMs);
    // Built from what was written rather than read back and decoded: the
    // row holds exactly these values. The parameters are the caller's own
    // object; the config is copied (the server shares one across jobs).
    const stamp = timestampFromMs(now);
    const job = create(JobSchema, {
      jobId,
      jobParams: input.params,
      state: decision.state,
      createdAt: stamp,
      updatedAt: stamp,
      executionConfig: clone(ExecutionConfigSchema, input.executionConfig),
      queue: input.queue,
      attempt: decision.attempt,
      ...(delayed ? { notBefore: timestampFromMs(decision.notBeforeMs) } : {}),
      waitingFor: [...waitingFor],
    });
    return { job, created: true };
  }

  async dequeue(queue: string, options: DequeueOptions): Promise<LeasedJob[]> {
    const { maxJobs, visibilityTimeoutMs, signal } = options;
    const deadline = options.maxWaitMs === undefined
      ? undefined
      : this.#clock.now() + options.maxWaitMs;
    while (!this.#closed) {
      const now = this.#clock.now();
      if (this.#expiryTimer.mayHaveExpired(now)) this.#reclaimExpired(now);
      const { leased, ended } = this.#run.transaction(() =>
        this.#leaseReady(queue, maxJobs, visibilityTimeoutMs, options.workerName ?? "", now)
      );
      if (leased.length > 0) {
        this.#expiryTimer.arm(Math.min(...leased.map((row) => row.lease_expires_at_ms!)));
        return leased.map((row) => ({
          job: jobFromRow(row),
          taskToken: this.#tokens.sign({
            jobId: row.job_id,
            queue: row.queue,
            attempt: row.attempt,
          }),
        }));
      }
      // Jobs the lifecycle ended instead of leasing may have hidden others.
      if (ended > 0) continue;
      if (signal.aborted || (deadline !== undefined && now >= deadline)) break;
      await this.#queueWaiters.wait(queue, {
        signal,
        ...(deadline === undefined ? {} : { timeoutMs: deadline - now }),
      });
    }
    return [];
  }

  /**
   * Leases up to `maxJobs` of the queue's first waiting jobs as the
   * lifecycle decides, in queue order; runs inside a transaction. `ended`
   * counts the jobs it ended instead.
   */
  #leaseReady(
    queue: string,
    maxJobs: number,
    visibilityTimeoutMs: number,
    worker: string,
    now: number,
  ): { leased: JobRow[]; ended: number } {
    const candidates = this.#run.sql(SQL.readyCandidates).all(
      queue,
      maxJobs,
    ) as unknown as ViewRow[];
    const leases: [id: number, state: JobState, attempt: number, until: number][] = [];
    let ended = 0;
    for (const row of candidates) {
      const decision = decideLease(viewOfRow(row), { visibilityTimeoutMs }, now);
      switch (decision.kind) {
        case "lease":
          // Candidates are SCHEDULED rows: a lease that ran out was ended
          // (and its lost attempt recorded) before, so none is left to record.
          if (decision.lost !== undefined) throw new Error("bug: a scheduled row had a lease");
          leases.push([row.id, decision.state, decision.attempt, decision.leaseExpiresAtMs]);
          break;
        case "finish":
          this.#finish(row, decision, now);
          ended++;
          break;
        case "skip":
          break;
      }
    }
    if (leases.length === 0) return { leased: [], ended };
    // One statement leases them all; RETURNING has no order, so the rows
    // are put back in queue order.
    const rows = this.#run.sql(SQL.lease).all(
      now,
      worker,
      now,
      JSON.stringify(leases),
    ) as unknown as JobRow[];
    const byId = new Map(rows.map((row) => [row.id, row]));
    return { leased: leases.map(([id]) => byId.get(id)!), ended };
  }

  async updateLease(
    taskToken: string,
    queue: string,
    visibilityTimeoutMs: number,
  ): Promise<LeaseUpdate> {
    this.#assertOpen();
    const now = this.#clock.now();
    const claims = this.#tokens.verify(taskToken);
    const row = this.#viewRow(claims.jobId);
    const view = this.#settled(row, now);
    const decision = decideExtend(view, claims, { queue, visibilityTimeoutMs }, now);
    if (decision.kind === "handBack") {
      this.#release(row, decision.release, now);
    } else {
      this.#run.sql(SQL.extend).run(decision.leaseExpiresAtMs, row.id);
      this.#expiryTimer.arm(decision.leaseExpiresAtMs);
    }
    return { cancelled: decision.cancelled };
  }

  async complete(taskToken: string, result: JobResult): Promise<boolean> {
    this.#assertOpen();
    const now = this.#clock.now();
    // The read needs no transaction (the store is the only writer, and the
    // call runs to its end before anything else can); each decision's write
    // is one (job_statements.ts). A lease found expired on the way stays
    // rescheduled even though the completion is refused.
    const jobId = this.#completeJob(taskToken, result, now);
    if (jobId !== undefined) this.#jobWatchers.notify(jobId);
    return jobId !== undefined;
  }

  async completeBatch(items: readonly CompletionInput[]): Promise<BatchOutcome<boolean>[]> {
    this.#assertOpen();
    const now = this.#clock.now();
    const outcomes = this.#run.transaction(() =>
      settleEachSync(items, (item) => this.#completeJob(item.taskToken, item.result, now))
    );
    return outcomes.map((outcome) => {
      if (!outcome.ok) return outcome;
      if (outcome.value !== undefined) this.#jobWatchers.notify(outcome.value);
      return { ok: true, value: outcome.value !== undefined };
    });
  }

  /**
   * Records one result; returns the finished job's id, or undefined when the
   * call was a resend of the recorded result. Throws why it was refused.
   */
  #completeJob(taskToken: string, result: JobResult, now: number): string | undefined {
    const claims = this.#tokens.verify(taskToken);
    const row = this.#viewRow(claims.jobId);
    const decision = decideCompletion(this.#settled(row, now), claims, result, now);
    if (decision.kind === "resend") return undefined;
    this.#release(row, decision, now);
    return row.job_id;
  }

  async cancel(jobId: string, reason: string): Promise<Job> {
    this.#assertOpen();
    const now = this.#clock.now();
    this.#reclaimExpired(now);
    const row = this.#row(jobId);
    const decision = decideCancel(viewOfRow(row), { reason }, now);
    if (decision.newReason) {
      this.#run.sql(SQL.cancelReason).run(decision.cancelReason, now, row.id);
    }
    if (decision.kind === "finish") this.#finish(row, decision, now);
    return jobFromRow(this.#row(jobId));
  }

  async redrive(jobId: string): Promise<Job> {
    this.#assertOpen();
    const now = this.#clock.now();
    this.#reclaimExpired(now);
    const row = this.#row(jobId);
    writeRedrive(this.#run, row, decideRedrive(viewOfRow(row), now), now);
    this.#queueWaiters.notify(row.queue, 1);
    return jobFromRow(this.#row(jobId));
  }

  async publishEvents(taskToken: string, events: readonly JobEvent[]): Promise<number> {
    this.#assertOpen();
    const now = this.#clock.now();
    const claims = this.#tokens.verify(taskToken);
    const row = this.#row(claims.jobId);
    decidePublish(this.#settled(row, now), claims, now);
    const state = {
      base: BigInt(row.sequence_base),
      highest: BigInt(row.highest_sequence),
      storedBytes: row.output_bytes,
      truncated: row.output_truncated !== 0,
    };
    const capped = capOutput(
      sequenceEvents(events, state, now, this.capabilities.maxEventBytes),
      state,
      this.#maxJobOutputBytes,
    );
    // Output dropped at the cap stores no event but still moves the base.
    if (capped.events.length === 0 && capped.base === state.base) return 0;
    appendEvents(this.#run, row.id, capped, now);
    if (capped.events.length > 0) this.#jobWatchers.notify(row.job_id);
    return capped.events.length;
  }

  streamEvents(jobId: string, options: StreamEventsOptions): AsyncIterable<JobEvent> {
    return tailEvents(this.#eventSource, jobId, options);
  }

  async getJob(jobId: string): Promise<Job> {
    this.#assertOpen();
    this.#reclaimExpiredForRead(this.#clock.now());
    return jobFromRow(this.#row(jobId));
  }

  async listJobs(query: ListJobsQuery): Promise<JobPage> {
    this.#assertOpen();
    this.#reclaimExpiredForRead(this.#clock.now());
    const { filter, args } = listingFilter(query);
    const { total } = this.#run.sql(`SELECT COUNT(*) AS total FROM jobs ${filter}`).get(
      ...args,
    ) as { total: number };
    const rows = this.#run.sql(
      `SELECT * FROM jobs ${filter} ORDER BY id DESC LIMIT ? OFFSET ?`,
    ).all(...args, query.pageSize, (query.page - 1) * query.pageSize) as unknown as JobRow[];
    return {
      jobs: rows.map(jobFromRow),
      lastPage: Math.max(1, Math.ceil(total / query.pageSize)),
    };
  }

  /**
   * Deletes up to one batch of finished jobs older than `cutoffMs`, with
   * their events; returns how many jobs went (see retention.ts).
   */
  async deleteFinishedBefore(cutoffMs: number): Promise<number> {
    this.#assertOpen();
    return await deleteFinishedBefore(this.#run, cutoffMs, () => this.#closed);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopped.abort();
    this.#expiryTimer.close();
    this.#queueWaiters.notifyAll();
    this.#jobWatchers.notifyAll();
    await this.#retention;
    this.#db.close();
    this.#onClose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }

  #row(jobId: string): JobRow {
    const row = this.#run.sql(SQL.byJobId).get(jobId) as JobRow | undefined;
    if (row === undefined) throw new JobNotFoundError(jobId);
    return row;
  }

  /** The columns of `jobId`'s row the lifecycle reads. */
  #viewRow(jobId: string): ViewRow {
    const row = this.#run.sql(SQL.viewByJobId).get(jobId) as ViewRow | undefined;
    if (row === undefined) throw new JobNotFoundError(jobId);
    return row;
  }

  /**
   * The view of `row` for a decision at `now`, with the end of its lease
   * written first if it ran out (the decision reads it as ended either way).
   */
  #settled(row: ViewRow, now: number): JobView {
    const view = viewOfRow(row);
    const expiry = decideExpiry(view, now);
    if (expiry.kind !== "keep") this.#release(row, expiry, now);
    return view;
  }

  /**
   * Persists the end of an attempt the lifecycle decided: the job finished,
   * or scheduled again (due now, or once its backoff ends).
   */
  #release(row: ViewRow, release: Release, now: number): void {
    if (release.kind === "finish") {
      this.#finish(row, release, now);
      return;
    }
    const due = writeReschedule(this.#run, row, release, now);
    countAttemptEnd(release);
    if (release.notice !== undefined) this.#jobWatchers.notify(row.job_id);
    if (due) this.#queueWaiters.notify(row.queue, 1);
    else this.#expiryTimer.arm(release.notBeforeMs);
  }

  /**
   * Persists a finish the lifecycle decided and what it means for the jobs
   * waiting on it, in one transaction; then wakes whom they concern.
   */
  #finish(row: ViewRow, finish: Finish, now: number): void {
    const changes = this.#run.transaction(() => {
      writeFinish(this.#run, row, finish, now);
      return this.#dependencies.ended(row, now);
    });
    countAttemptEnd(finish);
    this.#jobWatchers.notify(row.job_id);
    wakeDependents(changes, this.#queueWaiters, this.#jobWatchers, this.#expiryTimer);
  }

  /**
   * {@link #reclaimExpired} before a read: on a disk that refuses writes the
   * read goes on, showing jobs whose lease ran out as still running until
   * the disk takes the change.
   */
  #reclaimExpiredForRead(now: number): void {
    try {
      this.#reclaimExpired(now);
    } catch (error) {
      if (!(error instanceof StoreFullError)) throw error;
    }
  }

  /**
   * Persists what the lifecycle makes of every lease that has run out by
   * `now`, and puts every job whose backoff ended by then in its queue.
   */
  #reclaimExpired(now: number): void {
    const due = this.#run.sql(SQL.promoteDue).all(now) as unknown as { queue: string }[];
    for (const { queue } of due) this.#queueWaiters.notify(queue, 1);
    const ended = this.#run.sql(SQL.leasesEndedBy).all(now) as unknown as ViewRow[];
    if (ended.length === 0) return;
    this.#run.transaction(() => {
      for (const row of ended) this.#settled(row, now);
    });
  }
}
