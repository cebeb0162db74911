/**
 * How jobs and events are laid out in DynamoDB (pure logic, no I/O). The
 * layout is the wire contract's "AWS backend facts": the jobs table keyed by
 * `job_id` with GSI1 (`queue`, `created_at`) and GSI2 (`request_id`), the
 * events table keyed by `job_id` and `sequence`.
 *
 * A job item holds the job's fixed parts as protobuf bytes (`params`,
 * `execution_config`, `result`) and its changing parts as plain attributes
 * that conditional updates test: `state`, `attempt`, `lease_expires_at`.
 * Retries add `not_before_ms`, `used_attempts`, `lost_attempts` and
 * `failure_reason`; the ended attempts are `attempts` (a Job message holding
 * only them, as bytes), the running one `open_started_at`, `open_worker` and
 * `sequence_base`; `pending_notice` is the ATTEMPT_END event a write decided,
 * kept until the next lease so a put cut short can be made again (see
 * job_updates.ts). Items written before retries lack all of these: they read
 * as 0 and empty.
 * A RUNNING job whose lease has passed is what the lifecycle's expiry makes
 * of it by definition ({@link effectiveState}, the lifecycle's stateAt); no
 * sweep has to write a rescheduling down (a cancelled job's end is written
 * when it is next read, see finish_job.ts).
 *
 * @module
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ExecutionConfigSchema,
  type Job,
  type JobEvent,
  JobEventSchema,
  type JobParams,
  JobParamsSchema,
  JobResultSchema,
  JobSchema,
  JobState,
} from "../../../gen/job/v1/job_pb.ts";
import type { SequenceState } from "../../protocol/event_sequencing.ts";
import { lastSequenceOf } from "../../protocol/event_position.ts";
import { type JobView, leaseExpired, stateAt } from "../lifecycle.ts";
import { attemptsAsOf } from "./attempt_items.ts";
import { dependenciesOf } from "../dependencies.ts";
import type { OutputState, StateAfterEvent } from "../output_cap.ts";

/** A DynamoDB item. */
export type Item = Record<string, AttributeValue>;

/** Name of the jobs table's index on (queue, created_at). */
export const QUEUE_INDEX = "GSI1";
/** Name of the jobs table's index on request_id. */
export const REQUEST_ID_INDEX = "GSI2";
/** Prefix of the items that claim a request_id (idempotency), kept in the jobs table. */
export const IDEMPOTENCY_PREFIX = "request#";
/**
 * Prefix of the schedule items (`schedule#<name>`), and the key of the one
 * item that lists their names, both kept in the jobs table (schedules.ts).
 * Neither has `created_at`, `queue` or `request_id`: they are in no index,
 * and job reads and listings pass over them ({@link isLiveJobItem}).
 */
export const SCHEDULE_PREFIX = "schedule#";
export const SCHEDULE_INDEX_ID = "schedules#index";

/** A job item, decoded. */
export interface JobRecord {
  readonly jobId: string;
  readonly queue: string;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
  readonly requestId: string;
  readonly state: JobState;
  readonly attempt: number;
  /** 0 when the job holds no lease. */
  readonly leaseExpiresAtMs: number;
  /** Highest event sequence stored when the current attempt began. */
  readonly sequenceBase: bigint;
  /** Highest event sequence any attempt has reserved for writing (0 when none). */
  readonly reservedSequence: bigint;
  /**
   * The attempt and worker number through which output was dropped at the
   * cap by a publish that ended in dropped output (so no event item says
   * how far the attempt got); 0 and 0n when none.
   */
  readonly droppedAttempt: number;
  /** JobParams.priority, kept apart so a message's band is known without decoding params. */
  readonly priority: number;
  readonly droppedLocalEnd: bigint;
  readonly cancelReason: string;
  /** SQS receipt handle and message id of the message the current attempt received. */
  readonly receiptHandle: string;
  readonly messageId: string;
  readonly params: Uint8Array;
  readonly executionConfig: Uint8Array;
  readonly result?: Uint8Array;
  /** Unix seconds after which DynamoDB's TTL may delete the item; 0 for none. */
  readonly ttl: number;
  /** See JobView: the retry counters, the backoff's end (0: none) and why it failed. */
  readonly notBeforeMs: number;
  readonly usedAttempts: number;
  readonly lostAttempts: number;
  readonly failureReason: string;
  /** The ended attempts, encoded (see attemptsOf); undefined when none ended. */
  readonly attempts?: Uint8Array;
  /** When the current attempt started (0: none is open) and the worker it named. */
  readonly openStartedAtMs: number;
  readonly openWorker: string;
  /** An ATTEMPT_END event (JobEvent bytes) decided but maybe not stored yet. */
  readonly pendingNotice?: Uint8Array;
  /**
   * The dependencies it still waits for (`waiting_for`, unordered); empty
   * once they let it run (its message is sent) or it ended (dependencies.ts).
   */
  readonly waitingFor: readonly string[];
  /** The jobs that registered to be told when this one ends (`dependents`). */
  readonly dependents: readonly string[];
}

const n = (value: number | bigint): AttributeValue => ({ N: String(value) });
const s = (value: string): AttributeValue => ({ S: value });

/** The item of a new SCHEDULED job. */
export function newJobItem(fields: {
  jobId: string;
  /** The lifecycle's start of the job (decideEnqueue); 0: at once. */
  notBeforeMs: number;
  queue: string;
  requestId: string;
  nowMs: number;
  params: JobParams;
  executionConfig: Uint8Array;
  /** The dependencies it waits for (none: it is ready, and its message is sent). */
  waitingFor?: readonly string[];
}): Item {
  const item: Item = {
    job_id: s(fields.jobId),
    queue: s(fields.queue),
    created_at: n(fields.nowMs),
    updated_at: n(fields.nowMs),
    state: n(JobState.SCHEDULED),
    attempt: n(0),
    lease_expires_at: n(0),
    sequence_base: n(0),
    params: { B: toBinary(JobParamsSchema, fields.params) },
    execution_config: { B: fields.executionConfig },
  };
  // Only jobs with a request_id appear in GSI2 (a sparse index).
  if (fields.requestId !== "") item.request_id = s(fields.requestId);
  // A delayed start waits as a retry's backoff does.
  if (fields.notBeforeMs > 0) item.not_before_ms = n(fields.notBeforeMs);
  if (fields.params.priority !== 0) item.priority = n(fields.params.priority);
  if (fields.waitingFor !== undefined && fields.waitingFor.length > 0) {
    item.waiting_for = { SS: [...fields.waitingFor] };
  }
  return item;
}

/** Decodes a job item. */
export function jobRecordOf(item: Item): JobRecord {
  return {
    jobId: str(item, "job_id"),
    queue: str(item, "queue"),
    createdAtMs: num(item, "created_at"),
    updatedAtMs: num(item, "updated_at"),
    requestId: item.request_id?.S ?? "",
    state: num(item, "state") as JobState,
    attempt: num(item, "attempt"),
    leaseExpiresAtMs: num(item, "lease_expires_at"),
    sequenceBase: BigInt(item.sequence_base?.N ?? "0"),
    reservedSequence: BigInt(item.reserved_sequence?.N ?? "0"),
    droppedAttempt: num(item, "output_dropped_attempt"),
    priority: num(item, "priority"),
    droppedLocalEnd: BigInt(item.output_dropped_local_end?.N ?? "0"),
    cancelReason: item.cancel_reason?.S ?? "",
    receiptHandle: item.receipt_handle?.S ?? "",
    messageId: item.message_id?.S ?? "",
    params: item.params?.B ?? new Uint8Array(),
    executionConfig: item.execution_config?.B ?? new Uint8Array(),
    ...(item.result?.B === undefined ? {} : { result: item.result.B }),
    ttl: num(item, "ttl"),
    notBeforeMs: num(item, "not_before_ms"),
    usedAttempts: num(item, "used_attempts"),
    lostAttempts: num(item, "lost_attempts"),
    failureReason: str(item, "failure_reason"),
    ...(item.attempts?.B === undefined ? {} : { attempts: item.attempts.B }),
    openStartedAtMs: num(item, "open_started_at"),
    openWorker: str(item, "open_worker"),
    ...(item.pending_notice?.B === undefined ? {} : { pendingNotice: item.pending_notice.B }),
    waitingFor: item.waiting_for?.SS ?? [],
    dependents: item.dependents?.SS ?? [],
  };
}

/** Whether the job waits for dependencies: SCHEDULED, with no message sent yet. */
export function isWaiting(record: JobRecord): boolean {
  return record.state === JobState.SCHEDULED && record.waitingFor.length > 0;
}

/** Whether the item is a job (not an idempotency claim or a schedule) that TTL has not removed. */
export function isLiveJobItem(item: Item | undefined, nowMs: number): item is Item {
  if (item === undefined || item.created_at === undefined) return false;
  const ttl = Number(item.ttl?.N ?? "0");
  return ttl === 0 || ttl * 1000 > nowMs;
}

/** What the lifecycle reads of a record (its result decoded only when read). */
export function viewOf(record: JobRecord): JobView {
  return {
    jobId: record.jobId,
    queue: record.queue,
    state: record.state,
    attempt: record.attempt,
    leaseExpiresAtMs: record.leaseExpiresAtMs,
    cancelReason: record.cancelReason,
    get result() {
      return record.result === undefined ? undefined : fromBinary(JobResultSchema, record.result);
    },
    get retry() {
      return fromBinary(JobParamsSchema, record.params).retry;
    },
    notBeforeMs: record.notBeforeMs,
    usedAttempts: record.usedAttempts,
    lostAttempts: record.lostAttempts,
    failureReason: record.failureReason,
  };
}

/** The state a job is in at `nowMs`, as the lifecycle reads it (see stateAt). */
export function effectiveState(record: JobRecord, nowMs: number): JobState {
  return stateAt(viewOf(record), nowMs);
}

/** The Job message of a record, as of `nowMs`. */
export function jobOf(record: JobRecord, nowMs: number): Job {
  const view = viewOf(record);
  const expired = leaseExpired(view, nowMs);
  const state = effectiveState(record, nowMs);
  const params = fromBinary(JobParamsSchema, record.params);
  const waiting = new Set(isWaiting(record) ? record.waitingFor : []);
  return create(JobSchema, {
    jobId: record.jobId,
    jobParams: params,
    state,
    createdAt: timestampFromMs(record.createdAtMs),
    updatedAt: timestampFromMs(expired ? record.leaseExpiresAtMs : record.updatedAtMs),
    executionConfig: fromBinary(ExecutionConfigSchema, record.executionConfig),
    queue: record.queue,
    attempt: record.attempt,
    ...(record.result === undefined ? {} : { result: fromBinary(JobResultSchema, record.result) }),
    cancelReason: record.cancelReason,
    failureReason: record.failureReason,
    attempts: attemptsAsOf(record, view, nowMs),
    ...(state === JobState.SCHEDULED && record.notBeforeMs > 0
      ? { notBefore: timestampFromMs(record.notBeforeMs) }
      : {}),
    // In the order the params name them (a string set keeps none).
    waitingFor: dependenciesOf(params).map((d) => d.jobId).filter((id) => waiting.has(id)),
  });
}

/** The key of the item that claims `requestId`. */
export function idempotencyKey(requestId: string): Item {
  return { job_id: s(`${IDEMPOTENCY_PREFIX}${requestId}`) };
}

/** The item that claims `requestId` for a job (no queue/created_at: it stays out of GSI1). */
export function idempotencyItem(
  requestId: string,
  jobId: string,
  queue: string,
  params: JobParams,
  nowMs: number,
): Item {
  return {
    ...idempotencyKey(requestId),
    idempotency_of: s(jobId),
    target_queue: s(queue),
    params: { B: toBinary(JobParamsSchema, params) },
    claimed_at: n(nowMs),
  };
}

/** What an idempotency item says. */
export function idempotencyClaimOf(
  item: Item,
): { jobId: string; queue: string; params: JobParams; claimedAtMs: number } {
  return {
    jobId: str(item, "idempotency_of"),
    queue: str(item, "target_queue"),
    params: fromBinary(JobParamsSchema, item.params?.B ?? new Uint8Array()),
    claimedAtMs: num(item, "claimed_at"),
  };
}

/**
 * The events-table item of a stored event (`sequence` is its last
 * sequence). It also carries the job's state right after it (`after`): the
 * worker number it accounts for and the output stored so far. Written in the
 * same PutItem as the event, that state can never disagree with the events
 * stored, however a publish was cut short and retried: the next publish
 * reads it back from the highest event ({@link publishStateOf}).
 */
export function eventItem(
  jobId: string,
  event: JobEvent,
  timestampMs: number,
  ttl: number,
  after: StateAfterEvent,
): Item {
  return {
    job_id: s(jobId),
    sequence: n(lastSequenceOf(event)),
    timestamp: n(timestampMs),
    event_type: n(event.eventType),
    event_payload: { B: toBinary(JobEventSchema, event) },
    ttl: n(ttl),
    local_end: n(after.localEnd),
    output_bytes: n(after.storedBytes),
    output_truncated: { BOOL: after.truncated },
  };
}

/** The attributes of the highest event item that {@link publishStateOf} reads. */
export const TOP_EVENT_ATTRIBUTES = ["sequence", "local_end", "output_bytes", "output_truncated"];

/**
 * Where a publish by `record`'s current attempt starts: its numbering and
 * the job's output, from the job's highest event item (`top`, undefined
 * when none) and the job item's record of output dropped at the end of a
 * publish. Events stored by an airunner from before the cap carry no state:
 * their numbers were never moved, and their output is not counted.
 */
export function publishStateOf(
  record: JobRecord,
  top: Item | undefined,
): SequenceState & OutputState {
  const topSequence = BigInt(top?.sequence?.N ?? "0");
  // Above what is stored and what an earlier attempt reserved but never wrote.
  const highest = topSequence > record.sequenceBase ? topSequence : record.sequenceBase;
  let localHighest = 0n;
  if (top !== undefined && topSequence > record.sequenceBase) {
    // Only the current attempt writes above its base.
    localHighest = BigInt(top.local_end?.N ?? String(topSequence - record.sequenceBase));
  }
  if (record.droppedAttempt === record.attempt && record.droppedLocalEnd > localHighest) {
    localHighest = record.droppedLocalEnd;
  }
  return {
    base: highest - localHighest,
    highest,
    storedBytes: Number(top?.output_bytes?.N ?? "0"),
    truncated: top?.output_truncated?.BOOL ?? false,
  };
}

/** The event an events-table item holds, or undefined when TTL has expired it. */
export function eventOf(item: Item, nowMs: number): JobEvent | undefined {
  const ttl = Number(item.ttl?.N ?? "0");
  if (ttl !== 0 && ttl * 1000 <= nowMs) return undefined;
  return fromBinary(JobEventSchema, item.event_payload?.B ?? new Uint8Array());
}

/** The SQS message body that points at a job (the wire contract's shape). */
export function messageBody(jobId: string, queue: string, attempt: number): string {
  return JSON.stringify({ job_id: jobId, queue, attempt });
}

/** The attempt an SQS message body names (0 when it names none). */
export function attemptOfMessage(body: string | undefined): number {
  try {
    const parsed = JSON.parse(body ?? "");
    return typeof parsed?.attempt === "number" ? parsed.attempt : 0;
  } catch {
    return 0;
  }
}

/** The job id an SQS message body names, or undefined when the body is not ours. */
export function jobIdOfMessage(body: string | undefined): string | undefined {
  try {
    const parsed = JSON.parse(body ?? "");
    return typeof parsed?.job_id === "string" ? parsed.job_id : undefined;
  } catch {
    return undefined;
  }
}

function str(item: Item, name: string): string {
  return item[name]?.S ?? "";
}

function num(item: Item, name: string): number {
  return Number(item[name]?.N ?? "0");
}
