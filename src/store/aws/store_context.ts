/**
 * What every operation of the AWS store shares: its clients, table names and
 * queue directory, clock, token codec, id generator and job watchers, its
 * open/closed state, and the reads and SDK-call wrapper they all use. The
 * operations (enqueue.ts, receive.ts, lease_fence.ts, completion.ts,
 * events.ts, listing.ts, ...) are functions over one context.
 *
 * @module
 */
import {
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
  type UpdateItemCommandOutput,
} from "@aws-sdk/client-dynamodb";
import type { UpdateExpressionParts } from "./job_updates.ts";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { type Clock, systemClock } from "../../clock.ts";
import { JobNotFoundError, StoreClosedError } from "../errors.ts";
import type { BatchOutcome } from "../job_store.ts";
import { Notifier } from "../notifier.ts";
import { DEFAULT_MAX_JOB_OUTPUT_BYTES } from "../output_cap.ts";
import type { TaskTokenCodec } from "../task_token.ts";
import { UuidV7Generator } from "../uuid_v7.ts";
import { BATCH_CONCURRENCY, DEFAULT_EVENTS_TTL_MS } from "./aws_limits.ts";
import { asStoreError, isConditionFailed } from "./aws_errors.ts";
import { settleBounded } from "./batching.ts";
import { isLiveJobItem, type Item, type JobRecord, jobRecordOf } from "./job_item.ts";
import { QueueDirectory } from "./queue_directory.ts";
import { SQS_MAX_DELAY_SECONDS } from "./sqs_schedule.ts";
import { bandOf, type PriorityBand } from "./priority_bands.ts";

/** Options of AwsJobStore (aws_store.ts). */
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
  /**
   * Longest DelaySeconds a message is sent with (SQS's cap, 900, by
   * default); a retry that waits longer is received early and put back
   * (see sqs_schedule.ts).
   */
  readonly sqsMaxDelaySeconds?: number;
}

/** The state one AWS store's operations share. */
export class AwsStoreContext {
  readonly ddb: DynamoDBClient;
  readonly sqs: SQSClient;
  readonly jobsTable: string;
  readonly eventsTable: string;
  readonly queues: QueueDirectory;
  readonly eventsTtlMs: number;
  readonly tokens: TaskTokenCodec;
  readonly clock: Clock;
  readonly maxJobOutputBytes: number;
  readonly sqsMaxDelaySeconds: number;
  readonly ids = new UuidV7Generator();
  /** Wakes this server's tails of a job at its writes. */
  readonly jobWatchers: Notifier<string>;
  /** Aborts every SDK call in flight when the store closes. */
  readonly #closing = new AbortController();
  readonly #onClose: () => void;
  #closed = false;

  constructor(options: AwsJobStoreOptions) {
    this.ddb = options.dynamodb;
    this.sqs = options.sqs;
    this.jobsTable = options.jobsTable;
    this.eventsTable = options.eventsTable;
    this.queues = new QueueDirectory(options.sqs, options.queueUrls, options.queuePrefix);
    this.eventsTtlMs = options.eventsTtlMs ?? DEFAULT_EVENTS_TTL_MS;
    this.tokens = options.tokenCodec;
    this.clock = options.clock ?? systemClock;
    this.maxJobOutputBytes = options.maxJobOutputBytes ?? DEFAULT_MAX_JOB_OUTPUT_BYTES;
    this.sqsMaxDelaySeconds = options.sqsMaxDelaySeconds ?? SQS_MAX_DELAY_SECONDS;
    this.jobWatchers = new Notifier(this.clock);
    this.#onClose = options.onClose ?? (() => {});
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Aborts when the store closes: for sleeps and lookups that must not outlive it. */
  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  /** Closes the store once: aborts calls in flight, wakes every tail, releases the clients. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(new StoreClosedError());
    this.jobWatchers.notifyAll();
    this.#onClose();
  }

  assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }

  /** The SDK options of every call: aborted when the store closes. */
  abort(): { abortSignal: AbortSignal } {
    return { abortSignal: this.#closing.signal };
  }

  /** The TTL attribute of an item written at `now`. */
  ttlSeconds(now: number): number {
    return Math.floor((now + this.eventsTtlMs) / 1000);
  }

  /** Runs one SDK call, translating its failures (a refused condition may be ignored). */
  async call<T>(
    operation: string,
    send: () => Promise<T>,
    options: { ignoreConditionFailure?: boolean } = {},
  ): Promise<T | undefined> {
    this.assertOpen();
    try {
      return await send();
    } catch (error) {
      if (options.ignoreConditionFailure && isConditionFailed(error)) return undefined;
      if (this.#closed) throw new StoreClosedError();
      throw asStoreError(operation, error);
    }
  }

  /**
   * One UpdateItem of job `jobId` with `update`, made only if `condition`
   * holds over the item (`#state` names its state attribute; `values` are
   * the condition's own). Undefined when the condition failed: someone
   * changed the job first.
   */
  async updateJobIf(
    jobId: string,
    update: UpdateExpressionParts,
    condition: { readonly expression: string; readonly values: Item },
    returnValues: "ALL_NEW" | "NONE",
  ): Promise<UpdateItemCommandOutput | undefined> {
    return await this.call(
      "DynamoDB UpdateItem",
      () =>
        this.ddb.send(
          new UpdateItemCommand({
            TableName: this.jobsTable,
            Key: { job_id: { S: jobId } },
            ...update,
            ConditionExpression: condition.expression,
            ExpressionAttributeNames: { ...update.ExpressionAttributeNames, "#state": "state" },
            ExpressionAttributeValues: { ...update.ExpressionAttributeValues, ...condition.values },
            ReturnValues: returnValues,
          }),
          this.abort(),
        ),
      { ignoreConditionFailure: true },
    );
  }

  /** The band queues of `queue` that exist, highest first (priority_bands.ts). */
  bandUrls(queue: string): Promise<{ band: PriorityBand; url: string }[]> {
    return this.queues.bandUrls(queue, this.#closing.signal);
  }

  /** The URL of the SQS queue of `queue` that holds jobs of `priority` (priority_bands.ts). */
  queueUrl(queue: string, priority = 0): Promise<string> {
    return this.queues.bandUrlOf(queue, bandOf(priority), this.#closing.signal);
  }

  /**
   * Each distinct (queue, band)'s URL, or the error resolving it met, keyed
   * by {@link queueUrlKey}.
   */
  async queueUrls(
    jobs: readonly { readonly queue: string; readonly priority: number }[],
  ): Promise<Map<string, BatchOutcome<string>>> {
    const distinct = [...new Map(jobs.map((job) => [queueUrlKey(job), job])).values()];
    const urls = await settleBounded(
      distinct,
      BATCH_CONCURRENCY,
      (job) => this.queueUrl(job.queue, job.priority),
    );
    return new Map(distinct.map((job, i) => [queueUrlKey(job), urls[i]!]));
  }

  /**
   * The record of `jobId`.
   * @throws {JobNotFoundError} when there is no live job item.
   */
  async record(jobId: string): Promise<JobRecord> {
    const item = await this.getItem(jobId);
    if (item === undefined) throw new JobNotFoundError(jobId);
    return jobRecordOf(item);
  }

  /** The live job item of `jobId`, if any (idempotency items and TTL-expired jobs are not). */
  async getItem(jobId: string): Promise<Item | undefined> {
    const out = await this.call("DynamoDB GetItem", () =>
      this.ddb.send(
        new GetItemCommand({
          TableName: this.jobsTable,
          Key: { job_id: { S: jobId } },
          ConsistentRead: true,
        }),
        this.abort(),
      ));
    const item = out?.Item;
    return isLiveJobItem(item, this.clock.now()) ? item : undefined;
  }
}

/** A DynamoDB number attribute. */
export function num(value: number | bigint): { N: string } {
  return { N: String(value) };
}

/** The key of {@link AwsStoreContext.queueUrls}'s map for a job of `queue` and `priority`. */
export function queueUrlKey(job: { readonly queue: string; readonly priority: number }): string {
  return `${job.queue}/${bandOf(job.priority)}`;
}
