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
import { isCompletionResend, settle } from "../batch.ts";
import { sameJobParams } from "../idempotency.ts";
import {
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  type ScanCommandInput,
  UpdateItemCommand,
  type WriteRequest,
} from "@aws-sdk/client-dynamodb";
import {
  type BatchResultErrorEntry,
  ChangeMessageVisibilityCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
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
import { eventTimestampMs, sequenceEvents } from "../../protocol/event_sequencing.ts";
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
import { countStoreMetric } from "../store_meter.ts";
import { Notifier } from "../notifier.ts";
import { capOutput, DEFAULT_MAX_JOB_OUTPUT_BYTES } from "../output_cap.ts";
import type { TaskTokenCodec } from "../task_token.ts";
import { UuidV7Generator } from "../uuid_v7.ts";
import {
  asStoreError,
  batchEntryError,
  isConditionFailed,
  isRetryableBatchEntry,
  isStaleReceipt,
} from "./aws_errors.ts";
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
  publishStateOf,
  QUEUE_INDEX,
  TOP_EVENT_ATTRIBUTES,
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
/** SQS's most entries per SendMessageBatch / DeleteMessageBatch. */
const SQS_BATCH_MAX = 10;
/** DynamoDB's most requests per BatchWriteItem. */
const DYNAMODB_BATCH_WRITE_MAX = 25;
/** Items of a batch call worked on at once (each is a few SDK calls). */
const BATCH_CONCURRENCY = 8;
/**
 * Retries of the entries a batch call left undone (SQS `Failed` entries that
 * may succeed later, DynamoDB `UnprocessedItems`), with exponential backoff
 * from BATCH_RETRY_BASE_MS up to BATCH_RETRY_MAX_MS. All of them together
 * take a few seconds, far below YOUNG_MESSAGE_MS: a message sent for a job
 * whose item is still being retried must not be taken for an orphan.
 */
const SQS_BATCH_RETRIES = 3;
const DYNAMODB_BATCH_RETRIES = 8;
const BATCH_RETRY_BASE_MS = 25;
const BATCH_RETRY_MAX_MS = 1_000;

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
  /** Most output bytes a job stores, all attempts together; 0: no cap (default 256 MiB). */
  readonly maxJobOutputBytes?: number;
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
  readonly #maxJobOutputBytes: number;
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
    this.#maxJobOutputBytes = options.maxJobOutputBytes ?? DEFAULT_MAX_JOB_OUTPUT_BYTES;
    this.#jobWatchers = new Notifier(this.#clock);
    this.#onClose = options.onClose ?? (() => {});
  }

  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    this.#assertOpen();
    // Resolve the queue first: an unknown queue writes nothing.
    const queueUrl = await this.#queues.urlOf(input.queue, this.#closing.signal);
    return await this.#enqueueTo(queueUrl, input);
  }

  /** {@link enqueue} once the queue's URL is known. */
  async #enqueueTo(queueUrl: string, input: EnqueueInput): Promise<EnqueueResult> {
    const now = this.#clock.now();
    const plan = await this.#planEnqueue(input, this.#ids.next(now), now);
    if (plan.send) await this.#sendMessage(queueUrl, plan.jobId, input.queue);
    return plan.existing ?? await this.#putNewJob(input, plan.jobId, now);
  }

  /**
   * Settles `input`'s request_id, if any: which job the enqueue is about
   * (`freshId`, or the one an earlier call claimed), whether that job
   * exists already, and whether a message must be sent for it.
   */
  async #planEnqueue(input: EnqueueInput, freshId: string, now: number): Promise<EnqueuePlan> {
    if (input.requestId === "") return { jobId: freshId, send: true };
    const claimed = await this.#claimRequestId(input, freshId, now);
    if (claimed === undefined) return { jobId: freshId, send: true };
    const existing = await this.#getItem(claimed.jobId);
    if (existing !== undefined) {
      const record = jobRecordOf(existing);
      return {
        jobId: claimed.jobId,
        existing: { job: jobOf(record, now), created: false },
        // A job nobody has taken yet may have lost its message to a crash:
        // send another (a duplicate is deleted on receipt).
        send: record.attempt === 0 && record.state === S.SCHEDULED,
      };
    }
    if (now - claimed.claimedAtMs < YOUNG_MESSAGE_MS) {
      // The first call died between its claim and its job: finish its work.
      return { jobId: claimed.jobId, send: true };
    }
    // Its job is gone (past its TTL): the key is free for a new job.
    await this.#reclaimRequestId(input, claimed.jobId, freshId, now);
    return { jobId: freshId, send: true };
  }

  /** Writes the item of a job whose message is sent; answers the enqueue. */
  async #putNewJob(input: EnqueueInput, jobId: string, now: number): Promise<EnqueueResult> {
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

  /**
   * Enqueues each input as {@link enqueue} does, in three steps: settle the
   * request_ids (each claim is a conditional write of its own, which no
   * batch call can carry), send the messages in request order with
   * SendMessageBatch, then write the jobs, with BatchWriteItem for those
   * without a request_id. A request_id met earlier in the batch is enqueued
   * after the rest, as a later call would be.
   */
  async enqueueBatch(inputs: readonly EnqueueInput[]): Promise<BatchOutcome<EnqueueResult>[]> {
    this.#assertOpen();
    const outcomes = new Array<BatchOutcome<EnqueueResult>>(inputs.length);
    // Resolve every queue first: an item for an unknown queue writes nothing.
    const urls = await this.#queueUrls(inputs.map((input) => input.queue));
    const now = this.#clock.now();
    const entries: { index: number; queueUrl: string; input: EnqueueInput; jobId: string }[] = [];
    const repeats: { index: number; queueUrl: string; input: EnqueueInput }[] = [];
    const requestIds = new Set<string>();
    inputs.forEach((input, index) => {
      const url = urls.get(input.queue)!;
      if (!url.ok) {
        outcomes[index] = url;
      } else if (input.requestId !== "" && requestIds.has(input.requestId)) {
        repeats.push({ index, queueUrl: url.value, input });
      } else {
        if (input.requestId !== "") requestIds.add(input.requestId);
        // Ids are drawn in request order, so the batch's jobs sort in that order.
        entries.push({ index, queueUrl: url.value, input, jobId: this.#ids.next(now) });
      }
    });
    const plans = await settleBounded(
      entries,
      BATCH_CONCURRENCY,
      (entry) => this.#planEnqueue(entry.input, entry.jobId, now),
    );
    const planned: PlannedEnqueue[] = [];
    plans.forEach((plan, k) => {
      const entry = entries[k]!;
      if (plan.ok) planned.push({ ...entry, plan: plan.value });
      else outcomes[entry.index] = plan;
    });
    for (const [k, outcome] of (await this.#sendAndWrite(planned, now)).entries()) {
      outcomes[planned[k]!.index] = outcome;
    }
    const byRequestId = groupBy(repeats, (repeat) => repeat.input.requestId);
    await settleBounded([...byRequestId.values()], BATCH_CONCURRENCY, async (group) => {
      for (const { index, queueUrl, input } of group) {
        outcomes[index] = await settle(() => this.#enqueueTo(queueUrl, input));
      }
    });
    return outcomes;
  }

  /**
   * Sends the planned jobs' messages, then writes their items, as
   * {@link enqueue} orders them: a message whose job is not written yet
   * waits on receipt (see #claim), while a job without a message would never
   * run, so a job whose message failed is not written. Messages go out in
   * request order for each queue (a standard queue keeps order only
   * best-effort; the batch adds no disorder of its own), window by window; each window's
   * items are written while the next window's messages go out, which keeps
   * every message's wait for its job short.
   */
  async #sendAndWrite(
    planned: readonly PlannedEnqueue[],
    now: number,
  ): Promise<BatchOutcome<EnqueueResult>[]> {
    const outcomes = new Array<BatchOutcome<EnqueueResult>>(planned.length);
    // Grouped by queue (a stable sort keeps request order within each), so
    // that most windows send full SendMessageBatch calls to one queue.
    const positions = planned.map((_, k) => k).sort((a, b) =>
      compareStrings(planned[a]!.queueUrl, planned[b]!.queueUrl) || a - b
    );
    const writes: Promise<void>[] = [];
    for (const window of chunksOf(positions, DYNAMODB_BATCH_WRITE_MAX)) {
      const unsent = await this.#sendWindow(window.map((k) => planned[k]!));
      writes.push((async () => {
        const written = await settle(() =>
          this.#writeWindow(window.map((k) => planned[k]!), unsent, now)
        );
        window.forEach((k, i) => outcomes[k] = written.ok ? written.value[i]! : written);
      })());
    }
    await Promise.all(writes);
    return outcomes;
  }

  /**
   * Sends the messages of a window's jobs that need one, each queue's in
   * order (queues in parallel); returns the errors of those that failed,
   * by position in the window.
   */
  async #sendWindow(window: readonly PlannedEnqueue[]): Promise<Map<number, unknown>> {
    const failures = new Map<number, unknown>();
    const toSend = window.flatMap((entry, i) => entry.plan.send ? [i] : []);
    const byQueue = groupBy(toSend, (i) => window[i]!.queueUrl);
    await Promise.all([...byQueue].map(async ([queueUrl, members]) => {
      for (const group of chunksOf(members, SQS_BATCH_MAX)) {
        const failed = await this.#sqsBatch(
          "SQS SendMessageBatch",
          group.map((i) => ({
            Id: String(i),
            MessageBody: messageBody(window[i]!.plan.jobId, window[i]!.input.queue, 0),
          })),
          (entries) =>
            this.#sqs.send(
              new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }),
              this.#abort(),
            ),
        );
        for (const [id, error] of failed) failures.set(Number(id), error);
      }
    }));
    return failures;
  }

  /**
   * Writes a window's jobs whose message went out: with BatchWriteItem for
   * jobs without a request_id, with enqueue's conditional PutItem for the
   * others (one may repair a half-done enqueue, which reuses its id).
   * Answers each job of the window.
   */
  async #writeWindow(
    window: readonly PlannedEnqueue[],
    unsent: ReadonlyMap<number, unknown>,
    now: number,
  ): Promise<BatchOutcome<EnqueueResult>[]> {
    const outcomes = new Array<BatchOutcome<EnqueueResult>>(window.length);
    const plain: { i: number; item: Item }[] = [];
    const claimed: number[] = [];
    window.forEach((entry, i) => {
      const failure = unsent.get(i);
      if (failure !== undefined) outcomes[i] = { ok: false, error: failure };
      else if (entry.plan.existing !== undefined) {
        outcomes[i] = { ok: true, value: entry.plan.existing };
      } else if (entry.input.requestId !== "") claimed.push(i);
      else {
        const item = newJobItem({
          jobId: entry.plan.jobId,
          queue: entry.input.queue,
          requestId: "",
          nowMs: now,
          params: entry.input.params,
          executionConfig: toBinary(ExecutionConfigSchema, entry.input.executionConfig),
        });
        plain.push({ i, item });
      }
    });
    const [unwritten, puts] = await Promise.all([
      this.#putJobItems(plain.map(({ item }) => item)),
      settleBounded(
        claimed,
        BATCH_CONCURRENCY,
        (i) => this.#putNewJob(window[i]!.input, window[i]!.plan.jobId, now),
      ),
    ]);
    for (const { i, item } of plain) {
      const error = unwritten.get(window[i]!.plan.jobId);
      outcomes[i] = error === undefined
        ? { ok: true, value: { job: jobOf(jobRecordOf(item), now), created: true } }
        : { ok: false, error };
    }
    puts.forEach((outcome, k) => outcomes[claimed[k]!] = outcome);
    return outcomes;
  }

  /**
   * Writes new job items with BatchWriteItem, retrying what DynamoDB leaves
   * unprocessed; returns the errors of the items not written, by job id.
   *
   * BatchWriteItem takes no condition, unlike enqueue's PutItem. None is
   * needed: these ids are fresh UUIDv7s from this store's generator, so no
   * item can hold them (enqueue's condition protects the repair of an
   * idempotent enqueue, which reuses an id and never comes here).
   */
  async #putJobItems(items: readonly Item[]): Promise<Map<string, Error>> {
    const failures = new Map<string, Error>();
    let pending: WriteRequest[] = items.map((Item) => ({ PutRequest: { Item } }));
    for (let retry = 0; pending.length > 0; retry++) {
      this.#assertOpen();
      let unprocessed: WriteRequest[];
      try {
        const out = await this.#ddb.send(
          new BatchWriteItemCommand({ RequestItems: { [this.#jobsTable]: pending } }),
          this.#abort(),
        );
        unprocessed = out.UnprocessedItems?.[this.#jobsTable] ?? [];
      } catch (error) {
        if (this.#closed) return failAll(failures, pending, new StoreClosedError());
        // The call is refused whole when one item is (too large, say):
        // write them one by one so that only that item fails, as with enqueue.
        if (isValidationError(error) && pending.length > 1) {
          for (const [jobId, failure] of await this.#putEach(pending)) {
            failures.set(jobId, failure);
          }
          return failures;
        }
        return failAll(failures, pending, asStoreError("DynamoDB BatchWriteItem", error));
      }
      if (unprocessed.length === 0) break;
      if (retry >= DYNAMODB_BATCH_RETRIES) {
        return failAll(
          failures,
          unprocessed,
          new BackendUnavailableError(
            "DynamoDB BatchWriteItem",
            `items stayed unprocessed after ${retry} retries`,
          ),
        );
      }
      // One count per round, labelled like the client's own counts of the
      // SDK's retries (aws_clients.ts), which this batch_retries series shares.
      countStoreMetric("airunner.dynamodb.batch_retries.total", 1, {
        operation: "BatchWriteItemCommand",
      });
      await this.#clock.sleep(backoffMs(retry), this.#closing.signal);
      pending = unprocessed;
    }
    return failures;
  }

  /** Writes each request with its own PutItem; returns the errors by job id. */
  async #putEach(requests: readonly WriteRequest[]): Promise<Map<string, Error>> {
    const outcomes = await settleBounded(
      requests,
      BATCH_CONCURRENCY,
      (request) =>
        this.#call("DynamoDB PutItem", () =>
          this.#ddb.send(
            new PutItemCommand({ TableName: this.#jobsTable, Item: request.PutRequest?.Item }),
            this.#abort(),
          )),
    );
    const failures = new Map<string, Error>();
    outcomes.forEach((outcome, i) => {
      if (!outcome.ok) failures.set(jobIdOfRequest(requests[i]!), outcome.error as Error);
    });
    return failures;
  }

  /**
   * Completes each item as {@link complete} does. Each completion stays its
   * own fenced UpdateItem: the fence is a condition, and BatchWriteItem
   * carries none. The finished jobs' messages then go in DeleteMessageBatch
   * calls.
   */
  async completeBatch(items: readonly CompletionInput[]): Promise<BatchOutcome<boolean>[]> {
    this.#assertOpen();
    const completed = await settleBounded(
      items,
      BATCH_CONCURRENCY,
      (item) => this.#completeOne(item.taskToken, item.result),
    );
    const outcomes: BatchOutcome<boolean>[] = completed.map((outcome) =>
      outcome.ok ? { ok: true, value: outcome.value !== undefined } : outcome
    );
    // A resend (undefined) finds its message deleted already.
    const finished = completed.flatMap((outcome, index) =>
      outcome.ok && outcome.value !== undefined && outcome.value.receiptHandle !== ""
        ? [{ index, record: outcome.value }]
        : []
    );
    const urls = await this.#queueUrls(finished.map(({ record }) => record.queue));
    const byQueue = new Map<string, typeof finished>();
    for (const entry of finished) {
      const url = urls.get(entry.record.queue)!;
      if (url.ok) groupInto(byQueue, url.value, entry);
      else outcomes[entry.index] = url;
    }
    const deletes = [...byQueue].flatMap(([queueUrl, entries]) =>
      chunksOf(entries, SQS_BATCH_MAX).map((group) => ({ queueUrl, group }))
    );
    await settleBounded(deletes, BATCH_CONCURRENCY, async ({ queueUrl, group }) => {
      const failed = await this.#sqsBatch(
        "SQS DeleteMessageBatch",
        group.map(({ index, record }) => ({
          Id: String(index),
          ReceiptHandle: record.receiptHandle,
        })),
        (entries) =>
          this.#sqs.send(
            new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }),
            this.#abort(),
          ),
        // As in #deleteMessage: a stale handle's message is deleted at its
        // next receipt (its job is finished).
        (failure) => isStaleReceipt(batchEntryError(failure)),
      );
      for (const [id, error] of failed) outcomes[Number(id)] = { ok: false, error };
    });
    return outcomes;
  }

  /** Each distinct queue's URL, or the error resolving it met. */
  async #queueUrls(queues: readonly string[]): Promise<Map<string, BatchOutcome<string>>> {
    const distinct = [...new Set(queues)];
    const urls = await settleBounded(
      distinct,
      BATCH_CONCURRENCY,
      (queue) => this.#queues.urlOf(queue, this.#closing.signal),
    );
    return new Map(distinct.map((queue, i) => [queue, urls[i]!]));
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

  async complete(taskToken: string, result: JobResult): Promise<boolean> {
    this.#assertOpen();
    const record = await this.#completeOne(taskToken, result);
    if (record === undefined) return false;
    const queueUrl = await this.#queues.urlOf(record.queue, this.#closing.signal);
    await this.#deleteMessage(queueUrl, record.receiptHandle);
    return true;
  }

  /**
   * Records one result; returns the record of the job it finished (whose
   * message is still to be deleted), or undefined when the call was a
   * resend of the recorded result and changed nothing.
   */
  async #completeOne(taskToken: string, result: JobResult): Promise<JobRecord | undefined> {
    const now = this.#clock.now();
    const claims = this.#tokens.verify(taskToken);
    const current = await this.#record(claims.jobId);
    if (isResendOf(current, claims.attempt, result)) return undefined;
    const record = this.#holding(current, claims.attempt, now);
    if (result.jobId !== record.jobId) throw new JobMismatchError(record.jobId, result.jobId);
    const stored = create(JobResultSchema, result);
    stored.completedAt ??= timestampFromMs(now);
    const state = record.cancelReason !== "" ? S.CANCELLED : finishedStateFor(result.success);
    try {
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
    } catch (error) {
      // A copy of this completion sent at the same time (a retry racing the
      // original, on this server or another) may have passed the fence
      // first: this one is then its resend, as it would be had it come later.
      if (error instanceof LeaseLostError) {
        const after = await this.#getItem(record.jobId);
        if (after !== undefined && isResendOf(jobRecordOf(after), claims.attempt, result)) {
          return undefined;
        }
      }
      throw error;
    }
    this.#jobWatchers.notify(record.jobId);
    return record;
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
    const state = publishStateOf(record, await this.#topEvent(record.jobId));
    const capped = capOutput(
      sequenceEvents(events, state, now, this.capabilities.maxEventBytes),
      state,
      this.#maxJobOutputBytes,
    );
    const ttl = this.#ttlSeconds(now);
    let stored = 0;
    if (capped.events.length > 0) {
      // Reserve the numbers on the job item, fenced like every lease write:
      // a worker whose lease ended meanwhile is refused here and writes
      // nothing, and the next attempt numbers its events above any range
      // reserved before it began (see #claim), so a late write can never
      // take a number the next attempt uses.
      await this.#fencedUpdate(record, now, {
        UpdateExpression: "SET reserved_sequence = :high",
        ConditionExtra: "(attribute_not_exists(reserved_sequence) OR reserved_sequence <= :high)",
        ExpressionAttributeValues: { ":high": num(capped.highest) },
      });
    }
    for (const [i, event] of capped.events.entries()) {
      const put = await this.#call(
        "DynamoDB PutItem",
        () =>
          this.#ddb.send(
            new PutItemCommand({
              TableName: this.#eventsTable,
              Item: eventItem(
                record.jobId,
                event,
                eventTimestampMs(event, now),
                ttl,
                capped.after[i]!,
              ),
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
    // Output dropped at the cap at the end of this publish left no event
    // item saying how far the attempt got: the job item says it, after the
    // events before it are stored (a retry then finds those, and drops the
    // same output again).
    const accounted = capped.after.at(-1)?.localEnd ?? state.highest - state.base;
    if (capped.localHighest > accounted) {
      await this.#fencedUpdate(record, now, {
        UpdateExpression:
          "SET output_dropped_attempt = :attempt, output_dropped_local_end = :dropped",
        ConditionExtra:
          "(attribute_not_exists(output_dropped_local_end) OR output_dropped_attempt <> :attempt OR output_dropped_local_end <= :dropped)",
        ExpressionAttributeValues: { ":dropped": num(capped.localHighest) },
      });
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
    return this.#holding(await this.#record(claims.jobId), claims.attempt, now);
  }

  /**
   * `record`, while `attempt` holds the job and its lease lasts.
   * @throws {LeaseLostError} otherwise.
   */
  #holding(record: JobRecord, attempt: number, now: number): JobRecord {
    if (record.attempt !== attempt) {
      throw new LeaseLostError(
        record.jobId,
        `attempt ${attempt} was superseded by attempt ${record.attempt}`,
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
    return BigInt((await this.#topEvent(jobId))?.sequence?.N ?? "0");
  }

  /** The highest event item of `jobId`, with the attributes publishStateOf reads. */
  async #topEvent(jobId: string): Promise<Item | undefined> {
    const out = await this.#call("DynamoDB Query", () =>
      this.#ddb.send(
        new QueryCommand({
          TableName: this.#eventsTable,
          KeyConditionExpression: "job_id = :job",
          ExpressionAttributeValues: { ":job": { S: jobId } },
          ProjectionExpression: TOP_EVENT_ATTRIBUTES.map((_, i) => `#a${i}`).join(", "),
          ExpressionAttributeNames: Object.fromEntries(
            TOP_EVENT_ATTRIBUTES.map((name, i) => [`#a${i}`, name]),
          ),
          ScanIndexForward: false,
          ConsistentRead: true,
          Limit: 1,
        }),
        this.#abort(),
      ));
    return out?.Items?.[0];
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

  /**
   * One SQS batch call over `entries` (at most SQS_BATCH_MAX), sending again
   * the entries whose failure may pass, a few times with backoff. Returns
   * the errors of the entries that still failed, by entry Id; an entry SQS
   * reports neither way counts as failed. `harmless` failures are not errors.
   */
  async #sqsBatch<E extends { Id: string }>(
    operation: string,
    entries: readonly E[],
    send: (entries: E[]) => Promise<{
      Successful?: readonly { Id: string | undefined }[] | undefined;
      Failed?: readonly BatchResultErrorEntry[] | undefined;
    }>,
    harmless: (failure: BatchResultErrorEntry) => boolean = () => false,
  ): Promise<Map<string, unknown>> {
    const failures = new Map<string, unknown>();
    let pending = [...entries];
    for (let retry = 0; pending.length > 0; retry++) {
      let out;
      try {
        out = await this.#call(operation, () => send(pending));
      } catch (error) {
        for (const entry of pending) failures.set(entry.Id, error);
        break;
      }
      const succeeded = new Set(out?.Successful?.map((entry) => entry.Id));
      const failed = new Map(out?.Failed?.map((entry) => [entry.Id, entry]));
      const again: E[] = [];
      for (const entry of pending) {
        if (succeeded.has(entry.Id)) continue;
        const failure = failed.get(entry.Id);
        if (failure !== undefined && harmless(failure)) continue;
        if (failure !== undefined && isRetryableBatchEntry(failure) && retry < SQS_BATCH_RETRIES) {
          again.push(entry);
        } else {
          failures.set(
            entry.Id,
            asStoreError(
              operation,
              failure === undefined
                ? new Error(`SQS reported no outcome for entry ${entry.Id}`)
                : batchEntryError(failure),
            ),
          );
        }
      }
      pending = again;
      if (pending.length > 0) await this.#clock.sleep(backoffMs(retry), this.#closing.signal);
    }
    return failures;
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

/** What an enqueue has to do once its request_id is settled. */
interface EnqueuePlan {
  /** The job: a fresh one, or the one the request_id names. */
  readonly jobId: string;
  /** The answer, when the job exists already (nothing to write). */
  readonly existing?: EnqueueResult;
  /** Whether to send a message for the job. */
  readonly send: boolean;
}

/** An item of enqueueBatch with its plan. */
interface PlannedEnqueue {
  readonly index: number;
  readonly queueUrl: string;
  readonly input: EnqueueInput;
  readonly plan: EnqueuePlan;
}

/**
 * Whether completing `attempt` with `result` repeats the completion that
 * finished the job (see isCompletionResend).
 */
function isResendOf(record: JobRecord, attempt: number, result: JobResult): boolean {
  return isFinished(record.state) && record.attempt === attempt &&
    isCompletionResend(
      record.result === undefined ? undefined : fromBinary(JobResultSchema, record.result),
      result,
    );
}

/** Runs `work` on each item, at most `limit` at a time; answers each, in input order. */
async function settleBounded<I, T>(
  items: readonly I[],
  limit: number,
  work: (item: I) => Promise<T>,
): Promise<BatchOutcome<T>[]> {
  const outcomes = new Array<BatchOutcome<T>>(items.length);
  let next = 0;
  const runner = async () => {
    while (next < items.length) {
      const index = next++;
      outcomes[index] = await settle(() => work(items[index]!));
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
  return outcomes;
}

function chunksOf<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groupInto(groups, key(item), item);
  return groups;
}

function groupInto<T>(groups: Map<string, T[]>, key: string, item: T): void {
  const group = groups.get(key);
  if (group === undefined) groups.set(key, [item]);
  else group.push(item);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Delay before retry number `retry` (from 0) of a batch call's leftovers: exponential, half jittered. */
function backoffMs(retry: number): number {
  const ceiling = Math.min(BATCH_RETRY_MAX_MS, BATCH_RETRY_BASE_MS * 2 ** retry);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Records `error` for every request's job; returns `failures`. */
function failAll(
  failures: Map<string, Error>,
  requests: readonly WriteRequest[],
  error: Error,
): Map<string, Error> {
  for (const request of requests) failures.set(jobIdOfRequest(request), error);
  return failures;
}

function jobIdOfRequest(request: WriteRequest): string {
  return request.PutRequest?.Item?.job_id?.S ?? "";
}

function isValidationError(error: unknown): boolean {
  return (error as { name?: unknown } | null)?.name === "ValidationException";
}
