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
import { sameJobParams } from "../idempotency.ts";
import { isCompletionResend, settleEachSync } from "../batch.ts";
import { clone, create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import {
  type ExecutionConfig,
  ExecutionConfigSchema,
  type Job,
  type JobEvent,
  JobEventSchema,
  type JobParams,
  JobParamsSchema,
  type JobResult,
  JobResultSchema,
  JobSchema,
  JobState,
} from "../../../gen/job/v1/job_pb.ts";
import { type Clock, systemClock } from "../../clock.ts";
import { nextMacrotask } from "../../event_loop.ts";
import {
  IdempotencyConflictError,
  JobFinishedError,
  JobMismatchError,
  JobNotFoundError,
  LeaseLostError,
  QueueMismatchError,
  StoreClosedError,
  StoreFullError,
} from "../errors.ts";
import { type DiskNotice, DiskWatch, isDiskRefusal } from "../disk_errors.ts";
import { preparePrivateDatabase } from "../private_files.ts";
import { guardedStatements, type Statement } from "./guarded_statement.ts";
import {
  eventTimestampMs,
  lastSequenceOf,
  sequenceEvents,
} from "../../protocol/event_sequencing.ts";
import { type EventLogSource, tailEvents } from "../event_tail.ts";
import { finishedStateFor, isFinished } from "../../protocol/job_state.ts";
import {
  type BatchOutcome,
  type CompletionInput,
  DEFAULT_CANCEL_REASON,
  type DequeueOptions,
  type EnqueueInput,
  type EnqueueResult,
  type JobPage,
  type JobStore,
  type LeasedJob,
  type LeaseUpdate,
  type ListJobsQuery,
  type StoreCapabilities,
  type StreamEventsOptions,
} from "../job_store.ts";
import { EMBEDDED_MAX_EVENT_BYTES } from "../memory_store.ts";
import { Notifier } from "../notifier.ts";
import { capOutput, DEFAULT_MAX_JOB_OUTPUT_BYTES } from "../output_cap.ts";
import type { TaskTokenClaims, TaskTokenCodec } from "../task_token.ts";
import { UuidV7Generator } from "../uuid_v7.ts";
import { migrate } from "./schema.ts";

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

/** ready_key of work scheduled again: below every row id, oldest first. */
const RESCHEDULED_BASE = -(2 ** 52);
/** Jobs and event rows deleted per retention transaction, so requests are never held up long. */
const RETENTION_BATCH = 500;
/** How soon lease expiries are reclaimed again after the disk refused it. */
const RECLAIM_RETRY_MS = 1_000;

const S = JobState;

/**
 * Statements that write job states in as literals, built once: the statement
 * cache is keyed by text, and a text rebuilt per call was hashed and compared
 * in full on every lookup.
 */
const SQL = {
  insertJob:
    `INSERT INTO jobs (id, job_id, queue, state, request_id, created_at_ms, updated_at_ms, params, execution_config, ready_key)
    VALUES (?, ?, ?, ${S.SCHEDULED}, ?, ?, ?, ?, ?, ?)`,
  readyIds:
    `SELECT id FROM jobs WHERE queue = ? AND state = ${S.SCHEDULED} ORDER BY ready_key LIMIT ?`,
  leaseIds: `UPDATE jobs SET state = ${S.RUNNING}, attempt = attempt + 1, ready_key = NULL,
    lease_expires_at_ms = ?, sequence_base = highest_sequence, updated_at_ms = ?
    WHERE id IN (SELECT value FROM json_each(?)) RETURNING *`,
  completeLeased:
    `UPDATE jobs SET state = CASE WHEN cancel_reason != '' THEN ${S.CANCELLED} ELSE ? END,
    result = ?, lease_expires_at_ms = NULL, updated_at_ms = ?, finished_at_ms = ?
    WHERE job_id = ? AND attempt = ? AND state = ${S.RUNNING} AND lease_expires_at_ms > ?`,
  scheduleAgain: `UPDATE jobs SET state = ${S.SCHEDULED}, ready_key = ?, lease_expires_at_ms = NULL,
    updated_at_ms = ? WHERE id = ?`,
  finishCancelled:
    `UPDATE jobs SET state = ${S.CANCELLED}, ready_key = NULL, lease_expires_at_ms = NULL,
    result = ?, updated_at_ms = ?, finished_at_ms = ? WHERE id = ?`,
  expiredCancelled: `SELECT * FROM jobs WHERE state = ${S.RUNNING} AND lease_expires_at_ms <= ?
    AND cancel_reason != ''`,
  reclaimExpired:
    `UPDATE jobs SET state = ${S.SCHEDULED}, ready_key = ${RESCHEDULED_BASE} + lease_expires_at_ms,
    lease_expires_at_ms = NULL, updated_at_ms = ?
    WHERE state = ${S.RUNNING} AND lease_expires_at_ms <= ? RETURNING queue`,
  earliestLeaseExpiry:
    `SELECT MIN(lease_expires_at_ms) AS next FROM jobs WHERE state = ${S.RUNNING}`,
} as const;

interface JobRow {
  id: number;
  job_id: string;
  queue: string;
  state: number;
  request_id: string | null;
  attempt: number;
  lease_expires_at_ms: number | null;
  sequence_base: number;
  highest_sequence: number;
  output_bytes: number;
  output_truncated: number;
  created_at_ms: number;
  updated_at_ms: number;
  params: Uint8Array;
  execution_config: Uint8Array;
  result: Uint8Array | null;
  cancel_reason: string;
}

/** A JobStore in one SQLite file. */
export class SqliteJobStore implements JobStore {
  readonly capabilities: StoreCapabilities = {
    durable: true,
    wakesOnEnqueue: true,
    pushesEvents: true,
    maxEventBytes: EMBEDDED_MAX_EVENT_BYTES,
    redeliversBeforeNewerWork: true,
  };

  readonly #db: DatabaseSync;
  readonly #clock: Clock;
  readonly #tokens: TaskTokenCodec;
  readonly #maxJobOutputBytes: number;
  readonly #ids = new UuidV7Generator();
  #lastConfig:
    | {
      /** The object last given (usually the server's one config, passed each time). */
      readonly given: ExecutionConfig;
      /** A copy of it, for comparing after the caller changed its object. */
      readonly config: ExecutionConfig;
      readonly bytes: Uint8Array;
    }
    | undefined;
  /** The id the next inserted job gets (one above the highest, as SQLite would pick). */
  #nextRowId: number;
  readonly #statements = new Map<string, Statement>();
  readonly #disk: DiskWatch;
  readonly #prepare: (text: string) => Statement;
  readonly #queueWaiters: Notifier<string>;
  readonly #jobWatchers: Notifier<string>;
  readonly #stopped = new AbortController();
  #expiryTimer: { readonly at: number; readonly stop: AbortController } | undefined;
  readonly #retention: Promise<void>;
  readonly #onError: (error: unknown) => void;
  readonly #onClose: () => void;
  #closed = false;

  private constructor(db: DatabaseSync, options: SqliteJobStoreOptions, disk: DiskWatch) {
    this.#db = db;
    this.#disk = disk;
    this.#prepare = guardedStatements(db, disk);
    this.#clock = options.clock ?? systemClock;
    this.#tokens = options.tokenCodec;
    this.#maxJobOutputBytes = options.maxJobOutputBytes ?? DEFAULT_MAX_JOB_OUTPUT_BYTES;
    this.#queueWaiters = new Notifier(this.#clock);
    this.#jobWatchers = new Notifier(this.#clock);
    this.#onError = options.onBackgroundError ?? (() => {});
    this.#onClose = options.onClose ?? (() => {});
    this.#nextRowId = (db.prepare("SELECT COALESCE(MAX(id), 0) + 1 AS next FROM jobs").get() as {
      next: number;
    }).next;
    // Leases that ran out while the server was down are due now.
    this.#armExpiryTimer();
    const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
    this.#retention = retentionMs > 0
      ? this.#retainLoop(retentionMs, options.retentionIntervalMs ?? 60_000)
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
    const result = this.#transaction(() => this.#insertJob(input, now));
    if (result.created) this.#queueWaiters.notify(input.queue, 1);
    return result;
  }

  async enqueueBatch(inputs: readonly EnqueueInput[]): Promise<BatchOutcome<EnqueueResult>[]> {
    this.#assertOpen();
    const now = this.#clock.now();
    // One transaction (one WAL commit) for the whole batch; an item that
    // fails throws before it writes anything, so the others still commit.
    const outcomes = this.#transaction(() =>
      settleEachSync(inputs, (input) => this.#insertJob(input, now))
    );
    inputs.forEach((input, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok && outcome.value.created) this.#queueWaiters.notify(input.queue, 1);
    });
    return outcomes;
  }

  /** Inserts one job (or finds the one its request_id made); runs inside a transaction. */
  #insertJob(input: EnqueueInput, now: number): EnqueueResult {
    if (input.requestId !== "") {
      const existing = this.#sql("SELECT * FROM jobs WHERE request_id = ?").get(
        input.requestId,
      ) as JobRow | undefined;
      if (existing !== undefined) {
        const sameJob = existing.queue === input.queue &&
          sameJobParams(fromBinary(JobParamsSchema, existing.params), input.params);
        if (!sameJob) throw new IdempotencyConflictError(input.requestId, existing.job_id);
        return { job: jobFromRow(existing), created: false };
      }
    }
    const jobId = this.#ids.next(now);
    // The row id is chosen here, so the row is written whole in one
    // statement (its ready_key, the queue order, is its id).
    const id = this.#nextRowId++;
    this.#sql(SQL.insertJob).run(
      id,
      jobId,
      input.queue,
      input.requestId === "" ? null : input.requestId,
      now,
      now,
      toBinary(JobParamsSchema, input.params),
      this.#configBytes(input.executionConfig),
      id,
    );
    // Built from what was written rather than read back and decoded: the
    // row holds exactly these values. The parameters are the caller's own
    // object; the config is copied (the server shares one across jobs).
    const stamp = timestampFromMs(now);
    const job = create(JobSchema, {
      jobId,
      jobParams: input.params,
      state: S.SCHEDULED,
      createdAt: stamp,
      updatedAt: stamp,
      executionConfig: clone(ExecutionConfigSchema, input.executionConfig),
      queue: input.queue,
      attempt: 0,
    });
    return { job, created: true };
  }

  /**
   * The encoded execution config; jobs almost always carry the server's one
   * config, so its encoding is kept rather than redone per job.
   */
  #configBytes(config: ExecutionConfig): Uint8Array {
    const cached = this.#lastConfig;
    if (
      cached !== undefined &&
      (cached.given === config || equals(ExecutionConfigSchema, cached.config, config))
    ) {
      return cached.bytes;
    }
    const bytes = toBinary(ExecutionConfigSchema, config);
    this.#lastConfig = { given: config, config: clone(ExecutionConfigSchema, config), bytes };
    return bytes;
  }

  async dequeue(queue: string, options: DequeueOptions): Promise<LeasedJob[]> {
    const { maxJobs, visibilityTimeoutMs, signal } = options;
    const deadline = options.maxWaitMs === undefined
      ? undefined
      : this.#clock.now() + options.maxWaitMs;
    while (!this.#closed) {
      const now = this.#clock.now();
      // The armed timer is at or before the earliest lease expiry, so
      // before it nothing can have expired.
      if (this.#expiryTimer === undefined || now >= this.#expiryTimer.at) {
        this.#reclaimExpired(now);
      }
      const rows = this.#transaction(() => {
        const ids = this.#sql(SQL.readyIds).all(queue, maxJobs) as unknown as { id: number }[];
        if (ids.length === 0) return [];
        // One statement leases them all; RETURNING has no order, so the
        // rows are put back in queue order.
        const leased = this.#sql(SQL.leaseIds).all(
          now + visibilityTimeoutMs,
          now,
          JSON.stringify(ids.map(({ id }) => id)),
        ) as unknown as JobRow[];
        const byId = new Map(leased.map((row) => [row.id, row]));
        return ids.map(({ id }) => byId.get(id)!);
      });
      if (rows.length > 0) {
        this.#armExpiryTimer(now + visibilityTimeoutMs);
        return rows.map((row) => ({
          job: jobFromRow(row),
          taskToken: this.#tokens.sign({
            jobId: row.job_id,
            queue: row.queue,
            attempt: row.attempt,
          }),
        }));
      }
      if (signal.aborted || (deadline !== undefined && now >= deadline)) break;
      await this.#queueWaiters.wait(queue, {
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
    const now = this.#clock.now();
    const row = this.#leasedRow(taskToken, now);
    if (row.queue !== queue) throw new QueueMismatchError(row.queue, queue);
    const cancelled = row.cancel_reason !== "";
    if (visibilityTimeoutMs <= 0) {
      this.#scheduleAgain(row, now);
    } else {
      this.#sql("UPDATE jobs SET lease_expires_at_ms = ? WHERE id = ?").run(
        now + visibilityTimeoutMs,
        row.id,
      );
      this.#armExpiryTimer(now + visibilityTimeoutMs);
    }
    return { cancelled };
  }

  async complete(taskToken: string, result: JobResult): Promise<boolean> {
    this.#assertOpen();
    const now = this.#clock.now();
    // One UPDATE needs no transaction; a lease found expired on the way
    // stays rescheduled even though the completion is refused.
    const jobId = this.#completeJob(taskToken, result, now);
    if (jobId !== undefined) this.#jobWatchers.notify(jobId);
    return jobId !== undefined;
  }

  async completeBatch(items: readonly CompletionInput[]): Promise<BatchOutcome<boolean>[]> {
    this.#assertOpen();
    const now = this.#clock.now();
    const outcomes = this.#transaction(() =>
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
    const stored = create(JobResultSchema, result);
    stored.completedAt ??= timestampFromMs(now);
    if (result.jobId === claims.jobId) {
      // The usual case in one statement: the fence is in the WHERE clause.
      const { changes } = this.#sql(SQL.completeLeased).run(
        finishedStateFor(result.success),
        toBinary(JobResultSchema, stored),
        now,
        now,
        claims.jobId,
        claims.attempt,
        now,
      );
      if (Number(changes) === 1) return claims.jobId;
    }
    // Otherwise find out why (a resend, a lost lease, another job's result).
    const done = this.#row(claims.jobId);
    if (
      isFinished(done.state) && done.attempt === claims.attempt &&
      isCompletionResend(
        done.result === null ? undefined : fromBinary(JobResultSchema, done.result),
        result,
      )
    ) {
      return undefined;
    }
    // Throws when the lease is gone. If it still holds, the fenced UPDATE
    // above matched nothing only because the result names another job.
    const row = this.#leasedRow(taskToken, now, { claims, row: done });
    throw new JobMismatchError(row.job_id, result.jobId);
  }

  async cancel(jobId: string, reason: string): Promise<Job> {
    this.#assertOpen();
    const now = this.#clock.now();
    this.#reclaimExpired(now);
    const row = this.#row(jobId);
    if (isFinished(row.state)) {
      throw new JobFinishedError(jobId, (JobState[row.state] ?? "").toLowerCase());
    }
    if (row.cancel_reason === "") {
      row.cancel_reason = reason === "" ? DEFAULT_CANCEL_REASON : reason;
      this.#sql("UPDATE jobs SET cancel_reason = ?, updated_at_ms = ? WHERE id = ?").run(
        row.cancel_reason,
        now,
        row.id,
      );
    }
    if (row.state === S.SCHEDULED) this.#finishCancelled(row, now, "");
    return jobFromRow(this.#row(jobId));
  }

  async publishEvents(taskToken: string, events: readonly JobEvent[]): Promise<number> {
    this.#assertOpen();
    const now = this.#clock.now();
    const row = this.#leasedRow(taskToken, now);
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
    this.#transaction(() => {
      const insert = this.#sql(
        "INSERT INTO events (job, end_seq, timestamp_ms, payload) VALUES (?, ?, ?, ?)",
      );
      for (const event of capped.events) {
        insert.run(
          row.id,
          Number(lastSequenceOf(event)),
          eventTimestampMs(event, now),
          toBinary(JobEventSchema, event),
        );
      }
      this.#sql(
        "UPDATE jobs SET highest_sequence = ?, sequence_base = ?, output_bytes = ?, output_truncated = ? WHERE id = ?",
      ).run(
        Number(capped.highest),
        Number(capped.base),
        capped.storedBytes,
        capped.truncated ? 1 : 0,
        row.id,
      );
    });
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
    const { total } = this.#sql(`SELECT COUNT(*) AS total FROM jobs ${filter}`).get(...args) as {
      total: number;
    };
    const rows = this.#sql(`SELECT * FROM jobs ${filter} ORDER BY id DESC LIMIT ? OFFSET ?`).all(
      ...args,
      query.pageSize,
      (query.page - 1) * query.pageSize,
    ) as unknown as JobRow[];
    return {
      jobs: rows.map(jobFromRow),
      lastPage: Math.max(1, Math.ceil(total / query.pageSize)),
    };
  }

  /**
   * Deletes up to one batch of finished jobs older than `cutoffMs`, with
   * their events; returns how many jobs went. Event rows go in batches of
   * their own, so a job with a huge log never holds the database long.
   */
  async deleteFinishedBefore(cutoffMs: number): Promise<number> {
    this.#assertOpen();
    const jobs = this.#sql(
      "SELECT id FROM jobs WHERE finished_at_ms < ? ORDER BY finished_at_ms LIMIT ?",
    ).all(cutoffMs, RETENTION_BATCH) as unknown as { id: number }[];
    for (const { id } of jobs) {
      const deleteEvents = this.#sql(
        "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE job = ? LIMIT ?)",
      );
      while (!this.#closed && Number(deleteEvents.run(id, RETENTION_BATCH).changes) > 0) {
        await nextMacrotask();
      }
      if (this.#closed) return 0;
      this.#sql("DELETE FROM jobs WHERE id = ?").run(id);
    }
    return jobs.length;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopped.abort();
    this.#expiryTimer?.stop.abort();
    this.#queueWaiters.notifyAll();
    this.#jobWatchers.notifyAll();
    await this.#retention;
    this.#db.close();
    this.#onClose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  readonly #eventSource: EventLogSource = {
    readEvents: async (jobId, fromSequence, limit) => {
      this.#assertOpen();
      const rows = this.#sql(
        `SELECT payload FROM events WHERE job = (SELECT id FROM jobs WHERE job_id = ?)
           AND end_seq >= ? ORDER BY end_seq LIMIT ?`,
      ).all(jobId, Number(fromSequence), limit) as unknown as { payload: Uint8Array }[];
      return rows.map((r) => fromBinary(JobEventSchema, r.payload));
    },
    isFinished: async (jobId) => {
      this.#assertOpen();
      const row = this.#sql("SELECT state FROM jobs WHERE job_id = ?").get(jobId) as
        | { state: JobState }
        | undefined;
      if (row === undefined) throw new JobNotFoundError(jobId);
      return isFinished(row.state);
    },
    waitForChange: (jobId, signal) => this.#jobWatchers.wait(jobId, { signal }),
  };

  #sql(text: string): Statement {
    let statement = this.#statements.get(text);
    if (statement === undefined) {
      statement = this.#prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }

  #transaction<T>(work: () => T): T {
    this.#sql("BEGIN IMMEDIATE").run();
    try {
      const result = work();
      this.#sql("COMMIT").run();
      return result;
    } catch (error) {
      // SQLite ends the transaction itself after some errors (a full disk,
      // an I/O error): a ROLLBACK then fails, and its error must not hide
      // the one that matters.
      if (this.#db.isTransaction) {
        try {
          this.#sql("ROLLBACK").run();
        } catch (rollbackError) {
          this.#onError(rollbackError);
        }
      }
      throw error;
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }

  #row(jobId: string): JobRow {
    const row = this.#sql("SELECT * FROM jobs WHERE job_id = ?").get(jobId) as JobRow | undefined;
    if (row === undefined) throw new JobNotFoundError(jobId);
    return row;
  }

  /** The row the token leases, if its attempt still holds the job and its lease has not run out. */
  #leasedRow(
    taskToken: string,
    now: number,
    known?: { readonly claims: TaskTokenClaims; readonly row: JobRow },
  ): JobRow {
    const claims = known?.claims ?? this.#tokens.verify(taskToken);
    const row = known?.row ?? this.#row(claims.jobId);
    if (row.attempt !== claims.attempt) {
      throw new LeaseLostError(
        row.job_id,
        `attempt ${claims.attempt} was superseded by attempt ${row.attempt}`,
      );
    }
    if (row.state === S.RUNNING && (row.lease_expires_at_ms ?? 0) <= now) {
      this.#scheduleAgain(row, row.lease_expires_at_ms ?? now);
      row.state = S.SCHEDULED;
    }
    if (row.state !== S.RUNNING) {
      throw new LeaseLostError(
        row.job_id,
        isFinished(row.state)
          ? "the job has finished"
          : "the lease expired or was handed back, and the job was scheduled again",
      );
    }
    return row;
  }

  /**
   * Makes a running job SCHEDULED again (ordered by `atMs`, ahead of new
   * work) and wakes its queue; a job someone cancelled ends CANCELLED instead.
   */
  #scheduleAgain(row: JobRow, atMs: number): void {
    if (row.cancel_reason !== "") {
      this.#finishCancelled(row, this.#clock.now(), " (its worker stopped before finishing)");
      return;
    }
    this.#sql(SQL.scheduleAgain).run(RESCHEDULED_BASE + atMs, this.#clock.now(), row.id);
    this.#queueWaiters.notify(row.queue, 1);
  }

  /** Ends a cancelled job that is not running (any more) as CANCELLED. */
  #finishCancelled(row: JobRow, now: number, detail: string): void {
    const result = create(JobResultSchema, {
      jobId: row.job_id,
      success: false,
      errorMessage: `cancelled: ${row.cancel_reason}${detail}`,
      completedAt: timestampFromMs(now),
    });
    this.#sql(SQL.finishCancelled).run(toBinary(JobResultSchema, result), now, now, row.id);
    this.#jobWatchers.notify(row.job_id);
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

  /** Schedules again every job whose lease has run out by `now`, and wakes their queues. */
  #reclaimExpired(now: number): void {
    const cancelled = this.#sql(SQL.expiredCancelled).all(now) as unknown as JobRow[];
    for (const row of cancelled) this.#scheduleAgain(row, now);
    const queues = this.#sql(SQL.reclaimExpired).all(now, now) as unknown as { queue: string }[];
    for (const { queue } of queues) this.#queueWaiters.notify(queue, 1);
  }

  /** Keeps one timer armed at the earliest lease expiry, so waiting dequeues wake when it passes. */
  #armExpiryTimer(newLeaseExpiresAt?: number): void {
    if (this.#closed) return;
    // A new lease ending no earlier than the armed timer changes nothing.
    const armedAt = this.#expiryTimer?.at;
    if (armedAt !== undefined && newLeaseExpiresAt !== undefined && armedAt <= newLeaseExpiresAt) {
      return;
    }
    const { next } = this.#sql(SQL.earliestLeaseExpiry).get() as { next: number | null };
    const armed = this.#expiryTimer;
    if (armed !== undefined && next !== null && armed.at <= next) return;
    armed?.stop.abort();
    this.#expiryTimer = undefined;
    if (next === null) return;
    this.#armExpiryTimerAt(next);
  }

  #armExpiryTimerAt(at: number): void {
    const timer = { at, stop: new AbortController() };
    this.#expiryTimer = timer;
    void this.#clock.sleep(at - this.#clock.now(), timer.stop.signal).then(() => {
      if (timer.stop.signal.aborted || this.#closed) return;
      this.#expiryTimer = undefined;
      try {
        this.#reclaimExpired(this.#clock.now());
        this.#armExpiryTimer();
      } catch (error) {
        // A disk that refuses the change: try again soon, so waiting
        // dequeues still get the work once it takes writes again.
        if (!(error instanceof StoreFullError)) this.#onError(error);
        this.#armExpiryTimerAt(this.#clock.now() + RECLAIM_RETRY_MS);
      }
    });
  }

  async #retainLoop(retentionMs: number, intervalMs: number): Promise<void> {
    const signal = this.#stopped.signal;
    while (!signal.aborted) {
      try {
        while (
          !signal.aborted && await this.deleteFinishedBefore(this.#clock.now() - retentionMs) > 0
        ) {
          await nextMacrotask();
        }
      } catch (error) {
        // A full disk was told once when it turned full (see DiskWatch).
        if (!(error instanceof StoreClosedError || error instanceof StoreFullError)) {
          this.#onError(error);
        }
      }
      await this.#clock.sleep(intervalMs, signal);
    }
  }
}

/**
 * Opens the database for the store. A disk with no room for the 32 KiB
 * shared-memory file of WAL mode (missing after a clean shutdown) fails
 * even reads; the database is then opened in exclusive locking mode, which
 * keeps that index in this process's memory, so reads and (once space is
 * freed) writes work, while other processes (`airunner backup`) wait until
 * the next restart.
 */
function openDatabase(path: string, disk: DiskWatch): DatabaseSync {
  try {
    return openDatabaseWith(path, false);
  } catch (error) {
    if (!isDiskRefusal(error)) throw error;
    let db;
    try {
      db = openDatabaseWith(path, true);
    } catch (again) {
      throw disk.translate(again);
    }
    disk.refused(
      error,
      "no room for its -shm file: opened for this server process alone; airunner backup cannot read it until the server restarts with space free",
    );
    return db;
  }
}

function openDatabaseWith(path: string, exclusive: boolean): DatabaseSync {
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    if (exclusive) db.exec("PRAGMA locking_mode = EXCLUSIVE");
    migrate(db, path);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
    return db;
  } catch (error) {
    try {
      db.close();
    } catch {
      // The error that made us close is the one to report.
    }
    throw error;
  }
}

/**
 * The WHERE clause of a listing. The state is written in as a literal, not
 * bound: only then can SQLite use the partial index of that state.
 */
export function listingFilter(query: Pick<ListJobsQuery, "queue" | "state">): {
  filter: string;
  args: string[];
} {
  const where: string[] = [];
  const args: string[] = [];
  if (query.queue !== undefined) {
    where.push("queue = ?");
    args.push(query.queue);
  }
  if (query.state !== undefined) {
    if (!Number.isSafeInteger(query.state)) {
      throw new TypeError(`state ${query.state} is not a number`);
    }
    where.push(`state = ${query.state}`);
  }
  return { filter: where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`, args };
}

function jobFromRow(row: JobRow): Job {
  return create(JobSchema, {
    jobId: row.job_id,
    jobParams: fromBinary(JobParamsSchema, row.params) as JobParams,
    state: row.state,
    createdAt: timestampFromMs(row.created_at_ms),
    updatedAt: timestampFromMs(row.updated_at_ms),
    executionConfig: fromBinary(ExecutionConfigSchema, row.execution_config),
    queue: row.queue,
    attempt: row.attempt,
    ...(row.result === null ? {} : { result: fromBinary(JobResultSchema, row.result) }),
    cancelReason: row.cancel_reason,
  });
}
