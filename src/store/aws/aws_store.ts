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
 * - Items past their TTL count as gone even before DynamoDB deletes them.
 *
 * A live tail on one server sees events another server stored by polling
 * the events table while it waits: every 100 ms while the job is producing
 * output, backing off to 1 s once it has been quiet for a few seconds.
 * Writes made through this server wake its own tails at once.
 *
 * @module
 */
import { sameJobParams } from "../idempotency.ts";
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  type ScanCommandInput,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ExecutionConfigSchema,
  type Job,
  type JobEvent,
  type JobResult,
  JobResultSchema,
  JobState,
} from "../../../gen/job/v1/job_pb.ts";
import { type Clock, systemClock } from "../../clock.ts";
import {
  BackendUnavailableError,
  IdempotencyConflictError,
  JobFinishedError,
  JobMismatchError,
  JobNotFoundError,
  LeaseLostError,
  QueueMismatchError,
  StoreClosedError,
} from "../errors.ts";
import { eventTimestampMs, sequenceEvents } from "../event_sequencing.ts";
import { type EventLogSource, tailEvents } from "../event_tail.ts";
import { finishedStateFor, isFinished } from "../job_state.ts";
import {
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
import { Notifier } from "../notifier.ts";
import type { TaskTokenCodec } from "../task_token.ts";
import { UuidV7Generator } from "../uuid_v7.ts";
import { asStoreError, isConditionFailed, isStaleReceipt } from "./aws_errors.ts";
import {
  effectiveState,
  eventItem,
  eventOf,
  idempotencyClaimOf,
  idempotencyItem,
  idempotencyKey,
  isLiveJobItem,
  type Item,
  jobIdOfMessage,
  jobOf,
  type JobRecord,
  jobRecordOf,
  leaseExpired,
  messageBody,
  newJobItem,
  QUEUE_INDEX,
} from "./job_item.ts";
import { QueueDirectory } from "./queue_directory.ts";

/** Largest event stored: DynamoDB items are at most 400 KB; the rest of the item fits in the margin. */
export const AWS_MAX_EVENT_BYTES = 350 * 1024;
/** SQS's longest visibility timeout, and so the longest lease one receive gives. */
export const SQS_MAX_VISIBILITY_SECONDS = 43_200;
/** SQS's longest long poll. */
const SQS_MAX_WAIT_SECONDS = 20;
/** SQS's most messages per receive. */
const SQS_MAX_MESSAGES = 10;
/** Default life of events (and of finished jobs) before DynamoDB's TTL removes them. */
export const DEFAULT_EVENTS_TTL_MS = 30 * 24 * 3600 * 1000;
/** A message for an unknown job younger than this may belong to an enqueue still writing its job. */
const YOUNG_MESSAGE_MS = 60_000;
/** Live-tail polling: fastest, slowest, and the quiet time after which it slows. */
const TAIL_POLL_MIN_MS = 100;
const TAIL_POLL_MAX_MS = 1_000;
const TAIL_QUIET_MS = 4_000;

const S = JobState;

/** Options of {@link AwsJobStore}. */
export interface AwsJobStoreOptions {
  readonly dynamodb: DynamoDBClient;
  readonly sqs: SQSClient;
  readonly jobsTable: string;
  readonly eventsTable: string;
  /** SQS queue URLs by airunner queue name; other names are looked up as `<queuePrefix><name>`. */
  readonly queueUrls: ReadonlyMap<string, string>;
  readonly queuePrefix: string;
  /** How long events (and finished jobs) live before TTL removes them. */
  readonly eventsTtlMs?: number;
  readonly tokenCodec: TaskTokenCodec;
  readonly clock?: Clock;
  /** Called once the store is closed (to release the clients the opener made). */
  readonly onClose?: () => void;
}

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
  };

  readonly #ddb: DynamoDBClient;
  readonly #sqs: SQSClient;
  readonly #jobsTable: string;
  readonly #eventsTable: string;
  readonly #queues: QueueDirectory;
  readonly #eventsTtlMs: number;
  readonly #tokens: TaskTokenCodec;
  readonly #clock: Clock;
  readonly #ids = new UuidV7Generator();
  readonly #jobWatchers: Notifier<string>;
  /** When each tailed job last showed new events, for the tail's poll backoff. */
  readonly #lastActivity = new Map<string, number>();
  /** Aborts every SDK call in flight when the store closes. */
  readonly #closing = new AbortController();
  readonly #onClose: () => void;
  #closed = false;

  constructor(options: AwsJobStoreOptions) {
    this.#ddb = options.dynamodb;
    this.#sqs = options.sqs;
    this.#jobsTable = options.jobsTable;
    this.#eventsTable = options.eventsTable;
    this.#queues = new QueueDirectory(options.sqs, options.queueUrls, options.queuePrefix);
    this.#eventsTtlMs = options.eventsTtlMs ?? DEFAULT_EVENTS_TTL_MS;
    this.#tokens = options.tokenCodec;
    this.#clock = options.clock ?? systemClock;
    this.#jobWatchers = new Notifier(this.#clock);
    this.#onClose = options.onClose ?? (() => {});
  }

  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    this.#assertOpen();
    // Resolve the queue first: an unknown queue writes nothing.
    const queueUrl = await this.#queues.urlOf(input.queue, this.#closing.signal);
    const now = this.#clock.now();
    let jobId = this.#ids.next(now);
    if (input.requestId !== "") {
      const claimed = await this.#claimRequestId(input, jobId, now);
      if (claimed !== undefined) {
        const existing = await this.#getItem(claimed.jobId);
        if (existing !== undefined) {
          const record = jobRecordOf(existing);
          // A job nobody has taken yet may have lost its message to a crash:
          // send another (a duplicate is deleted on receipt).
          if (record.attempt === 0 && record.state === S.SCHEDULED) {
            await this.#sendMessage(queueUrl, claimed.jobId, input.queue);
          }
          return { job: jobOf(record, now), created: false };
        }
        if (now - claimed.claimedAtMs < YOUNG_MESSAGE_MS) {
          // The first call died between its claim and its job: finish its work.
          jobId = claimed.jobId;
        } else {
          // Its job is gone (past its TTL): the key is free for a new job.
          await this.#reclaimRequestId(input, claimed.jobId, jobId, now);
        }
      }
    }
    await this.#sendMessage(queueUrl, jobId, input.queue);
    const item = newJobItem({
      jobId,
      queue: input.queue,
      requestId: input.requestId,
      nowMs: now,
      params: input.params,
      executionConfig: toBinary(ExecutionConfigSchema, input.executionConfig),
    });
    const put = await this.#call("DynamoDB PutItem", () =>
      this.#ddb.send(
        new PutItemCommand({
          TableName: this.#jobsTable,
          Item: item,
          // New, or a leftover past its TTL that DynamoDB has not deleted yet.
          ConditionExpression: "attribute_not_exists(job_id) OR #ttl BETWEEN :one AND :now",
          ExpressionAttributeNames: { "#ttl": "ttl" },
          ExpressionAttributeValues: { ":one": num(1), ":now": num(Math.floor(now / 1000)) },
        }),
        this.#abort(),
      ), { ignoreConditionFailure: true });
    if (put === undefined) {
      // A concurrent retry of the same repair wrote it first.
      const written = await this.#getItem(jobId);
      if (written === undefined) {
        throw asStoreError("DynamoDB PutItem", new Error(`job ${jobId} could not be written`));
      }
      return { job: jobOf(jobRecordOf(written), now), created: false };
    }
    return { job: jobOf(jobRecordOf(item), now), created: true };
  }

  async dequeue(queue: string, options: DequeueOptions): Promise<LeasedJob[]> {
    this.#assertOpen();
    const { maxJobs, visibilityTimeoutMs, signal } = options;
    const queueUrl = await this.#queues.urlOf(queue, this.#closing.signal);
    const deadline = options.maxWaitMs === undefined
      ? undefined
      : this.#clock.now() + options.maxWaitMs;
    const visibilitySeconds = Math.min(
      SQS_MAX_VISIBILITY_SECONDS,
      Math.max(1, Math.ceil(visibilityTimeoutMs / 1000)),
    );
    while (!this.#closed && !signal.aborted) {
      const remainingMs = deadline === undefined ? Infinity : deadline - this.#clock.now();
      if (remainingMs <= 0) break;
      const waitSeconds = Math.min(SQS_MAX_WAIT_SECONDS, Math.ceil(remainingMs / 1000));
      const messages = await this.#receive(
        queueUrl,
        Math.min(maxJobs, SQS_MAX_MESSAGES),
        visibilitySeconds,
        waitSeconds,
        signal,
      );
      const leased: LeasedJob[] = [];
      let failure: unknown;
      for (const message of messages) {
        try {
          const claimed = await this.#claim(queue, queueUrl, message, visibilityTimeoutMs);
          if (claimed !== undefined) leased.push(claimed);
        } catch (error) {
          // Keep the leases already taken; this message comes back when its visibility ends.
          failure ??= error;
        }
      }
      if (leased.length > 0) return leased;
      if (failure !== undefined) throw failure;
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
    const record = await this.#leasedRecord(taskToken, now);
    if (record.queue !== queue) throw new QueueMismatchError(record.queue, queue);
    const cancelled = record.cancelReason !== "";
    const queueUrl = await this.#queues.urlOf(record.queue, this.#closing.signal);
    if (visibilityTimeoutMs <= 0) {
      if (cancelled) {
        await this.#finishCancelled(record, now, "");
        await this.#deleteMessage(queueUrl, record.receiptHandle);
        return { cancelled };
      }
      await this.#fencedUpdate(record, now, {
        UpdateExpression: "SET #state = :scheduled, lease_expires_at = :zero, updated_at = :now",
        ExpressionAttributeValues: { ":scheduled": num(S.SCHEDULED), ":zero": num(0) },
      });
      await this.#changeVisibility(queueUrl, record.receiptHandle, 0);
      return { cancelled };
    }
    await this.#fencedUpdate(record, now, {
      UpdateExpression: "SET lease_expires_at = :until",
      ExpressionAttributeValues: { ":until": num(now + visibilityTimeoutMs) },
    });
    // Past SQS's 12-hour cap the message comes back early; its receipt then
    // finds the lease held and puts it back in flight (see #claim).
    await this.#changeVisibility(
      queueUrl,
      record.receiptHandle,
      Math.min(SQS_MAX_VISIBILITY_SECONDS, Math.ceil(visibilityTimeoutMs / 1000)),
    );
    return { cancelled };
  }

  async complete(taskToken: string, result: JobResult): Promise<void> {
    this.#assertOpen();
    const now = this.#clock.now();
    const record = await this.#leasedRecord(taskToken, now);
    if (result.jobId !== record.jobId) throw new JobMismatchError(record.jobId, result.jobId);
    const stored = create(JobResultSchema, result);
    stored.completedAt ??= timestampFromMs(now);
    const state = record.cancelReason !== "" ? S.CANCELLED : finishedStateFor(result.success);
    await this.#fencedUpdate(record, now, {
      UpdateExpression:
        "SET #state = :final, #result = :result, lease_expires_at = :zero, updated_at = :now, #ttl = :ttl",
      ExpressionAttributeNames: { "#result": "result", "#ttl": "ttl" },
      ExpressionAttributeValues: {
        ":final": num(state),
        ":result": { B: toBinary(JobResultSchema, stored) },
        ":zero": num(0),
        ":ttl": num(this.#ttlSeconds(now)),
      },
    });
    this.#jobWatchers.notify(record.jobId);
    const queueUrl = await this.#queues.urlOf(record.queue, this.#closing.signal);
    await this.#deleteMessage(queueUrl, record.receiptHandle);
  }

  async cancel(jobId: string, reason: string): Promise<Job> {
    this.#assertOpen();
    const now = this.#clock.now();
    let record = await this.#record(jobId);
    const state = effectiveState(record, now);
    if (isFinished(state)) {
      throw new JobFinishedError(jobId, (JobState[state] ?? "").toLowerCase());
    }
    if (record.cancelReason === "") {
      const cancelReason = reason === "" ? DEFAULT_CANCEL_REASON : reason;
      try {
        await this.#ddb.send(
          new UpdateItemCommand({
            TableName: this.#jobsTable,
            Key: { job_id: { S: jobId } },
            UpdateExpression: "SET cancel_reason = :reason, updated_at = :now",
            ConditionExpression:
              "attribute_not_exists(cancel_reason) AND #state IN (:scheduled, :running)",
            ExpressionAttributeNames: { "#state": "state" },
            ExpressionAttributeValues: {
              ":reason": { S: cancelReason },
              ":now": num(now),
              ":scheduled": num(S.SCHEDULED),
              ":running": num(S.RUNNING),
            },
          }),
          this.#abort(),
        );
      } catch (error) {
        // Someone cancelled or finished it meanwhile: the re-read below says which.
        if (!isConditionFailed(error)) throw asStoreError("DynamoDB UpdateItem", error);
      }
      record = await this.#record(jobId);
      const now2 = this.#clock.now();
      if (isFinished(effectiveState(record, now2))) {
        if (record.state !== S.CANCELLED) {
          throw new JobFinishedError(jobId, (JobState[record.state] ?? "").toLowerCase());
        }
        return jobOf(record, now2);
      }
    }
    if (effectiveState(record, now) === S.SCHEDULED) {
      // Its SQS message is deleted when it is next received.
      record = await this.#finishCancelled(record, now, "");
    }
    return jobOf(record, this.#clock.now());
  }

  async publishEvents(taskToken: string, events: readonly JobEvent[]): Promise<number> {
    this.#assertOpen();
    const now = this.#clock.now();
    const record = await this.#leasedRecord(taskToken, now);
    const highest = await this.#highestSequence(record.jobId);
    const sequenced = sequenceEvents(
      events,
      { base: record.sequenceBase, highest },
      now,
      this.capabilities.maxEventBytes,
    );
    if (sequenced.events.length === 0) return 0;
    // Reserve the numbers on the job item, fenced like every lease write:
    // a worker whose lease ended meanwhile is refused here and writes
    // nothing, and the next attempt numbers its events above any range
    // reserved before it began (see #claim), so a late write can never
    // take a number the next attempt uses.
    await this.#fencedUpdate(record, now, {
      UpdateExpression: "SET reserved_sequence = :high",
      ConditionExtra: "(attribute_not_exists(reserved_sequence) OR reserved_sequence <= :high)",
      ExpressionAttributeValues: { ":high": num(sequenced.highest) },
    });
    const ttl = this.#ttlSeconds(now);
    let stored = 0;
    for (const event of sequenced.events) {
      const put = await this.#call(
        "DynamoDB PutItem",
        () =>
          this.#ddb.send(
            new PutItemCommand({
              TableName: this.#eventsTable,
              Item: eventItem(record.jobId, event, eventTimestampMs(event, now), ttl),
              // A resend of a stored event writes nothing.
              ConditionExpression: "attribute_not_exists(job_id)",
            }),
            this.#abort(),
          ),
        { ignoreConditionFailure: true },
      );
      // A refused condition means a concurrent resend stored it first.
      if (put !== undefined) stored++;
    }
    if (stored > 0) this.#jobWatchers.notify(record.jobId);
    return stored;
  }

  streamEvents(jobId: string, options: StreamEventsOptions): AsyncIterable<JobEvent> {
    return tailEvents(this.#eventSource, jobId, options);
  }

  async getJob(jobId: string): Promise<Job> {
    this.#assertOpen();
    const record = await this.#settled(await this.#record(jobId));
    return jobOf(record, this.#clock.now());
  }

  async listJobs(query: ListJobsQuery): Promise<JobPage> {
    this.#assertOpen();
    const items = query.queue === undefined
      ? await this.#scanAll({
        TableName: this.#jobsTable,
        FilterExpression: "attribute_exists(created_at)",
      })
      : await this.#queryAll({
        TableName: this.#jobsTable,
        IndexName: QUEUE_INDEX,
        KeyConditionExpression: "#queue = :queue",
        ExpressionAttributeNames: { "#queue": "queue" },
        ExpressionAttributeValues: { ":queue": { S: query.queue } },
      });
    const now = this.#clock.now();
    const records: JobRecord[] = [];
    for (const item of items) {
      if (!isLiveJobItem(item, now)) continue;
      records.push(await this.#settled(jobRecordOf(item)));
    }
    const matching = records
      .filter((r) => query.state === undefined || effectiveState(r, now) === query.state)
      .sort((a, b) => b.createdAtMs - a.createdAtMs || (a.jobId < b.jobId ? 1 : -1));
    const start = (query.page - 1) * query.pageSize;
    return {
      jobs: matching.slice(start, start + query.pageSize).map((r) => jobOf(r, now)),
      lastPage: Math.max(1, Math.ceil(matching.length / query.pageSize)),
    };
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#closing.abort(new StoreClosedError());
    this.#jobWatchers.notifyAll();
    this.#onClose();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ------------------------------------------------------------ internals

  readonly #eventSource: EventLogSource = {
    readEvents: async (jobId, fromSequence, limit) => {
      this.#assertOpen();
      const out = await this.#call("DynamoDB Query", () =>
        this.#ddb.send(
          new QueryCommand({
            TableName: this.#eventsTable,
            KeyConditionExpression: "job_id = :job AND #seq >= :from",
            ExpressionAttributeNames: { "#seq": "sequence" },
            ExpressionAttributeValues: { ":job": { S: jobId }, ":from": num(fromSequence) },
            ConsistentRead: true,
            Limit: limit,
          }),
          this.#abort(),
        ));
      const now = this.#clock.now();
      const events = (out?.Items ?? []).flatMap((item) => eventOf(item, now) ?? []);
      if (events.length > 0) this.#noteActivity(jobId, now);
      return events;
    },
    isFinished: async (jobId) => {
      this.#assertOpen();
      const record = await this.#settled(await this.#record(jobId));
      return isFinished(effectiveState(record, this.#clock.now()));
    },
    waitForChange: (jobId, signal) => {
      // Our own writes wake the tail at once; another server's show up at the next poll.
      const wake = new AbortController();
      const onAbort = () => wake.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      const local = this.#jobWatchers.wait(jobId, { signal: wake.signal });
      const polled = this.#clock.sleep(this.#pollDelay(jobId), wake.signal);
      return Promise.race([local, polled]).finally(() => {
        signal.removeEventListener("abort", onAbort);
        wake.abort();
      });
    },
  };

  /** How long a tail of `jobId` waits before reading again: short while it is busy. */
  #pollDelay(jobId: string): number {
    const last = this.#lastActivity.get(jobId);
    if (last === undefined) return TAIL_POLL_MIN_MS;
    const quietMs = this.#clock.now() - last;
    return quietMs >= TAIL_QUIET_MS ? TAIL_POLL_MAX_MS : TAIL_POLL_MIN_MS;
  }

  #noteActivity(jobId: string, now: number): void {
    this.#lastActivity.delete(jobId);
    this.#lastActivity.set(jobId, now);
    // Remember only the most recently active jobs.
    if (this.#lastActivity.size > 10_000) {
      this.#lastActivity.delete(this.#lastActivity.keys().next().value!);
    }
  }

  /**
   * Claims `input.requestId` for `jobId`. Returns undefined when this call
   * claimed it, or the earlier claim (same queue and parameters, else an
   * IdempotencyConflictError).
   */
  async #claimRequestId(
    input: EnqueueInput,
    jobId: string,
    now: number,
  ): Promise<{ jobId: string; claimedAtMs: number } | undefined> {
    try {
      await this.#ddb.send(
        new PutItemCommand({
          TableName: this.#jobsTable,
          Item: idempotencyItem(input.requestId, jobId, input.queue, input.params, now),
          ConditionExpression: "attribute_not_exists(job_id)",
        }),
        this.#abort(),
      );
      return undefined;
    } catch (error) {
      if (!isConditionFailed(error)) throw asStoreError("DynamoDB PutItem", error);
    }
    const out = await this.#call("DynamoDB GetItem", () =>
      this.#ddb.send(
        new GetItemCommand({
          TableName: this.#jobsTable,
          Key: idempotencyKey(input.requestId),
          ConsistentRead: true,
        }),
        this.#abort(),
      ));
    if (out?.Item === undefined) {
      throw asStoreError("DynamoDB GetItem", new Error("the request_id claim vanished"));
    }
    const claim = idempotencyClaimOf(out.Item);
    if (claim.queue !== input.queue || !sameJobParams(claim.params, input.params)) {
      throw new IdempotencyConflictError(input.requestId, claim.jobId);
    }
    return { jobId: claim.jobId, claimedAtMs: claim.claimedAtMs };
  }

  /** Points the request_id at a new job, if it still points at `oldJobId` (else another call won). */
  async #reclaimRequestId(
    input: EnqueueInput,
    oldJobId: string,
    newJobId: string,
    now: number,
  ): Promise<void> {
    try {
      await this.#ddb.send(
        new PutItemCommand({
          TableName: this.#jobsTable,
          Item: idempotencyItem(input.requestId, newJobId, input.queue, input.params, now),
          ConditionExpression: "idempotency_of = :old",
          ExpressionAttributeValues: { ":old": { S: oldJobId } },
        }),
        this.#abort(),
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

  async #sendMessage(queueUrl: string, jobId: string, queue: string): Promise<void> {
    await this.#call("SQS SendMessage", () =>
      this.#sqs.send(
        new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: messageBody(jobId, queue, 0) }),
        this.#abort(),
      ));
  }

  /**
   * One ReceiveMessage. If `signal` aborts first this resolves with no
   * messages at once; the receive itself runs on, and whatever it brings is
   * made visible again right away, so an abandoned wait loses no job.
   */
  #receive(
    queueUrl: string,
    maxMessages: number,
    visibilitySeconds: number,
    waitSeconds: number,
    signal: AbortSignal,
  ): Promise<Message[]> {
    const receiving = this.#call("SQS ReceiveMessage", () =>
      this.#sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: maxMessages,
          VisibilityTimeout: visibilitySeconds,
          WaitTimeSeconds: waitSeconds,
          MessageSystemAttributeNames: ["SentTimestamp"],
        }),
        this.#abort(),
      )).then((out) => out?.Messages ?? []);
    if (signal.aborted) {
      void this.#releaseWhenDone(queueUrl, receiving);
      return Promise.resolve([]);
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        void this.#releaseWhenDone(queueUrl, receiving);
        resolve([]);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      receiving.then(
        (messages) => {
          signal.removeEventListener("abort", onAbort);
          if (signal.aborted) return; // already resolved and released
          resolve(messages);
        },
        (error) => {
          signal.removeEventListener("abort", onAbort);
          if (!signal.aborted) reject(error);
        },
      );
    });
  }

  async #releaseWhenDone(queueUrl: string, receiving: Promise<Message[]>): Promise<void> {
    try {
      for (const message of await receiving) {
        await this.#changeVisibility(queueUrl, message.ReceiptHandle ?? "", 0);
      }
    } catch {
      // Closing, or SQS failed: the messages come back when their visibility ends.
    }
  }

  /**
   * Turns a received message into a lease on its job, or disposes of it:
   * deleted when its job is finished, unknown or already held through
   * another message; back in flight when it is the lease's own message.
   */
  async #claim(
    queue: string,
    queueUrl: string,
    message: Message,
    visibilityTimeoutMs: number,
  ): Promise<LeasedJob | undefined> {
    const handle = message.ReceiptHandle ?? "";
    const messageId = message.MessageId ?? "";
    const jobId = jobIdOfMessage(message.Body);
    if (jobId === undefined) {
      await this.#deleteMessage(queueUrl, handle);
      return undefined;
    }
    const item = await this.#itemSoon(jobId);
    const now = this.#clock.now();
    if (item === undefined) {
      const sentMs = Number(message.Attributes?.SentTimestamp ?? "0");
      if (now - sentMs < YOUNG_MESSAGE_MS) {
        // Its enqueue may still be writing the job: look again shortly.
        await this.#changeVisibility(queueUrl, handle, 1);
      } else {
        await this.#deleteMessage(queueUrl, handle);
      }
      return undefined;
    }
    const record = jobRecordOf(item);
    const state = effectiveState(record, now);
    if (isFinished(state) || record.queue !== queue) {
      await this.#deleteMessage(queueUrl, handle);
      return undefined;
    }
    if (state === S.RUNNING) {
      if (messageId !== "" && messageId === record.messageId) {
        // The lease's own message, back early (SQS caps visibility at 12 h):
        // keep it in flight until the lease ends, under its new handle.
        await this.#adoptReceipt(record, handle);
        const remaining = Math.ceil((record.leaseExpiresAtMs - now) / 1000);
        await this.#changeVisibility(
          queueUrl,
          handle,
          Math.min(SQS_MAX_VISIBILITY_SECONDS, Math.max(1, remaining)),
        );
      } else {
        await this.#deleteMessage(queueUrl, handle);
      }
      return undefined;
    }
    if (record.cancelReason !== "") {
      await this.#finishCancelled(record, now, leaseExpired(record, now) ? WORKER_GONE : "");
      await this.#deleteMessage(queueUrl, handle);
      return undefined;
    }
    // Events need a lease, so a job never taken has none: skip the query.
    // Above what is stored and what an earlier attempt reserved (a late write of its own).
    const storedHighest = record.attempt === 0 ? 0n : await this.#highestSequence(jobId);
    const sequenceBase = storedHighest > record.reservedSequence
      ? storedHighest
      : record.reservedSequence;
    let out;
    try {
      out = await this.#ddb.send(
        new UpdateItemCommand({
          TableName: this.#jobsTable,
          Key: { job_id: { S: jobId } },
          UpdateExpression:
            "SET #state = :running, attempt = :next, lease_expires_at = :until, sequence_base = :base, receipt_handle = :handle, message_id = :mid, updated_at = :now",
          ConditionExpression:
            "attempt = :seen AND attribute_not_exists(cancel_reason) AND (#state = :scheduled OR (#state = :running AND lease_expires_at <= :now))",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: {
            ":running": num(S.RUNNING),
            ":scheduled": num(S.SCHEDULED),
            ":next": num(record.attempt + 1),
            ":seen": num(record.attempt),
            ":until": num(now + visibilityTimeoutMs),
            ":base": num(sequenceBase),
            ":handle": { S: handle },
            ":mid": { S: messageId },
            ":now": num(now),
          },
          ReturnValues: "ALL_NEW",
        }),
        this.#abort(),
      );
    } catch (error) {
      // Another server claimed it first (through a duplicate message), or it
      // was cancelled meanwhile: this message is handled at its next receipt.
      if (isConditionFailed(error)) return undefined;
      throw asStoreError("DynamoDB UpdateItem", error);
    }
    const leased = jobRecordOf(out.Attributes!);
    return {
      job: jobOf(leased, now),
      taskToken: this.#tokens.sign({ jobId, queue, attempt: leased.attempt }),
    };
  }

  /**
   * A job item read right after its enqueue may not be written yet (the
   * message goes first): retry briefly, 5 ms and doubling, ~150 ms in all.
   */
  async #itemSoon(jobId: string): Promise<Item | undefined> {
    for (let delayMs = 5;; delayMs *= 2) {
      const item = await this.#getItem(jobId);
      if (item !== undefined || delayMs > 80) return item;
      await this.#clock.sleep(delayMs, this.#closing.signal);
    }
  }

  async #adoptReceipt(record: JobRecord, handle: string): Promise<void> {
    try {
      await this.#ddb.send(
        new UpdateItemCommand({
          TableName: this.#jobsTable,
          Key: { job_id: { S: record.jobId } },
          UpdateExpression: "SET receipt_handle = :handle",
          ConditionExpression: "attempt = :attempt",
          ExpressionAttributeValues: { ":handle": { S: handle }, ":attempt": num(record.attempt) },
        }),
        this.#abort(),
      );
    } catch (error) {
      if (!isConditionFailed(error)) throw asStoreError("DynamoDB UpdateItem", error);
    }
  }

  /**
   * The record the token leases, while its attempt holds the job and the
   * lease lasts.
   * @throws {LeaseLostError} otherwise.
   */
  async #leasedRecord(taskToken: string, now: number): Promise<JobRecord> {
    const claims = this.#tokens.verify(taskToken);
    const record = await this.#record(claims.jobId);
    if (record.attempt !== claims.attempt) {
      throw new LeaseLostError(
        record.jobId,
        `attempt ${claims.attempt} was superseded by attempt ${record.attempt}`,
      );
    }
    const state = effectiveState(record, now);
    if (state !== S.RUNNING) {
      throw new LeaseLostError(
        record.jobId,
        isFinished(state)
          ? "the job has finished"
          : "the lease expired or was handed back, and the job was scheduled again",
      );
    }
    return record;
  }

  /**
   * Applies `update` only while `record`'s attempt still holds an unexpired
   * lease (the fence); a refused condition is LeaseLostError.
   */
  async #fencedUpdate(
    record: JobRecord,
    now: number,
    update: {
      UpdateExpression: string;
      /** More that must hold, ANDed to the fence. */
      ConditionExtra?: string;
      ExpressionAttributeNames?: Record<string, string>;
      ExpressionAttributeValues: Item;
    },
  ): Promise<void> {
    try {
      await this.#ddb.send(
        new UpdateItemCommand({
          TableName: this.#jobsTable,
          Key: { job_id: { S: record.jobId } },
          UpdateExpression: update.UpdateExpression,
          ConditionExpression:
            "attempt = :attempt AND #state = :runningNow AND lease_expires_at > :now" +
            (update.ConditionExtra === undefined ? "" : ` AND ${update.ConditionExtra}`),
          ExpressionAttributeNames: { "#state": "state", ...update.ExpressionAttributeNames },
          ExpressionAttributeValues: {
            ...update.ExpressionAttributeValues,
            ":attempt": num(record.attempt),
            ":runningNow": num(S.RUNNING),
            ":now": num(now),
          },
        }),
        this.#abort(),
      );
    } catch (error) {
      if (isConditionFailed(error) || error instanceof ConditionalCheckFailedException) {
        throw new LeaseLostError(record.jobId, "the lease ended while the request was made");
      }
      throw asStoreError("DynamoDB UpdateItem", error);
    }
  }

  /** Ends a job that is not running (any more) and has a cancel reason as CANCELLED. */
  async #finishCancelled(record: JobRecord, now: number, detail: string): Promise<JobRecord> {
    const handBack = record.state === S.RUNNING && !leaseExpired(record, now);
    const result = create(JobResultSchema, {
      jobId: record.jobId,
      success: false,
      errorMessage: `cancelled: ${record.cancelReason}${detail}`,
      completedAt: timestampFromMs(now),
    });
    try {
      const out = await this.#ddb.send(
        new UpdateItemCommand({
          TableName: this.#jobsTable,
          Key: { job_id: { S: record.jobId } },
          UpdateExpression:
            "SET #state = :cancelled, #result = :result, lease_expires_at = :zero, updated_at = :now, #ttl = :ttl",
          // A lease holder handing a cancelled job back ends it while still holding it.
          ConditionExpression: handBack
            ? "attempt = :attempt AND #state IN (:scheduled, :running)"
            : "attempt = :attempt AND (#state = :scheduled OR (#state = :running AND lease_expires_at <= :now))",
          ExpressionAttributeNames: { "#state": "state", "#result": "result", "#ttl": "ttl" },
          ExpressionAttributeValues: {
            ":cancelled": num(S.CANCELLED),
            ":scheduled": num(S.SCHEDULED),
            ":running": num(S.RUNNING),
            ":result": { B: toBinary(JobResultSchema, result) },
            ":zero": num(0),
            ":now": num(now),
            ":ttl": num(this.#ttlSeconds(now)),
            ":attempt": num(record.attempt),
          },
          ReturnValues: "ALL_NEW",
        }),
        this.#abort(),
      );
      this.#jobWatchers.notify(record.jobId);
      return jobRecordOf(out.Attributes!);
    } catch (error) {
      if (!isConditionFailed(error)) throw asStoreError("DynamoDB UpdateItem", error);
      return await this.#record(record.jobId);
    }
  }

  /**
   * `record`, with a cancelled job whose lease ran out ended as CANCELLED
   * (an expired lease alone needs no write: it reads as SCHEDULED).
   */
  async #settled(record: JobRecord): Promise<JobRecord> {
    const now = this.#clock.now();
    if (record.cancelReason !== "" && leaseExpired(record, now)) {
      return await this.#finishCancelled(record, now, WORKER_GONE);
    }
    return record;
  }

  /** Highest event sequence stored for `jobId` (0 when none). */
  async #highestSequence(jobId: string): Promise<bigint> {
    const out = await this.#call("DynamoDB Query", () =>
      this.#ddb.send(
        new QueryCommand({
          TableName: this.#eventsTable,
          KeyConditionExpression: "job_id = :job",
          ExpressionAttributeValues: { ":job": { S: jobId } },
          ProjectionExpression: "#seq",
          ExpressionAttributeNames: { "#seq": "sequence" },
          ScanIndexForward: false,
          ConsistentRead: true,
          Limit: 1,
        }),
        this.#abort(),
      ));
    const top = out?.Items?.[0]?.sequence?.N;
    return top === undefined ? 0n : BigInt(top);
  }

  async #record(jobId: string): Promise<JobRecord> {
    const item = await this.#getItem(jobId);
    if (item === undefined) throw new JobNotFoundError(jobId);
    return jobRecordOf(item);
  }

  /** The live job item of `jobId`, if any (idempotency items and TTL-expired jobs are not). */
  async #getItem(jobId: string): Promise<Item | undefined> {
    const out = await this.#call("DynamoDB GetItem", () =>
      this.#ddb.send(
        new GetItemCommand({
          TableName: this.#jobsTable,
          Key: { job_id: { S: jobId } },
          ConsistentRead: true,
        }),
        this.#abort(),
      ));
    const item = out?.Item;
    return isLiveJobItem(item, this.#clock.now()) ? item : undefined;
  }

  async #scanAll(input: ScanCommandInput): Promise<Item[]> {
    return await this.#allPages(
      "DynamoDB Scan",
      (start) => new ScanCommand({ ...input, ...start }),
    );
  }

  async #queryAll(input: QueryCommandInput): Promise<Item[]> {
    return await this.#allPages(
      "DynamoDB Query",
      (start) => new QueryCommand({ ...input, ...start }),
    );
  }

  /** Every item of a paged Scan or Query. */
  async #allPages(
    operation: string,
    command: (start: { ExclusiveStartKey?: Item }) => ScanCommand | QueryCommand,
  ): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const page = command(start === undefined ? {} : { ExclusiveStartKey: start });
      const out = await this.#call(
        operation,
        () =>
          page instanceof ScanCommand
            ? this.#ddb.send(page, this.#abort())
            : this.#ddb.send(page, this.#abort()),
      );
      items.push(...(out?.Items ?? []));
      start = out?.LastEvaluatedKey;
    } while (start !== undefined);
    return items;
  }

  async #changeVisibility(queueUrl: string, handle: string, seconds: number): Promise<void> {
    if (handle === "") return;
    try {
      await this.#sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: queueUrl,
          ReceiptHandle: handle,
          VisibilityTimeout: seconds,
        }),
        this.#abort(),
      );
    } catch (error) {
      // A handle that expired belongs to a message SQS already made visible again.
      if (!isStaleReceipt(error)) throw asStoreError("SQS ChangeMessageVisibility", error);
    }
  }

  async #deleteMessage(queueUrl: string, handle: string): Promise<void> {
    if (handle === "") return;
    try {
      await this.#sqs.send(
        new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: handle }),
        this.#abort(),
      );
    } catch (error) {
      // A stale handle's message is deleted at its next receipt (its job is finished).
      if (!isStaleReceipt(error)) throw asStoreError("SQS DeleteMessage", error);
    }
  }

  /** Runs one SDK call, translating its failures (a refused condition may be ignored). */
  async #call<T>(
    operation: string,
    send: () => Promise<T>,
    options: { ignoreConditionFailure?: boolean } = {},
  ): Promise<T | undefined> {
    this.#assertOpen();
    try {
      return await send();
    } catch (error) {
      if (options.ignoreConditionFailure && isConditionFailed(error)) return undefined;
      if (this.#closed) throw new StoreClosedError();
      throw asStoreError(operation, error);
    }
  }

  #abort(): { abortSignal: AbortSignal } {
    return { abortSignal: this.#closing.signal };
  }

  #ttlSeconds(now: number): number {
    return Math.floor((now + this.#eventsTtlMs) / 1000);
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }
}

/** What a cancelled job's result adds when its worker stopped without finishing it. */
const WORKER_GONE = " (its worker stopped before finishing)";

function num(value: number | bigint): { N: string } {
  return { N: String(value) };
}
