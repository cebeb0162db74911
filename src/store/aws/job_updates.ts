/**
 * What each lifecycle decision writes to a job item, as data (pure logic, no
 * I/O): a finish, a reschedule (retry, lost lease, hand-back), a lease and a
 * redrive, each an {@link ItemUpdate} its caller sends as one conditional
 * UpdateItem. A reschedule that carries an ATTEMPT_END notice reserves its
 * sequence (the job's highest + 1) and keeps the event on the item
 * (`pending_notice`) until the next lease: whoever writes the decision puts
 * the event right after, and the next lease puts it again if that put was
 * cut short (a conditional put, so never twice).
 *
 * @module
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type JobAttempt,
  type JobEvent,
  JobEventSchema,
  JobResultSchema,
} from "../../../gen/job/v1/job_pb.ts";
import { appendAttempt, closedAttempt, noticeEvent } from "../attempt_records.ts";
import type { AttemptEnd, Finish, Lease, Redrive, Reschedule } from "../lifecycle.ts";
import { attemptsAttribute, attemptsOf, openAttemptOf } from "./attempt_items.ts";
import type { Item, JobRecord } from "./job_item.ts";

/** Attributes to set and to remove, in one UpdateItem. */
export interface ItemUpdate {
  readonly set: Readonly<Record<string, AttributeValue>>;
  readonly remove: readonly string[];
}

/** The expression parts of an UpdateItem that applies `update`. */
export interface UpdateExpressionParts {
  UpdateExpression: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues: Item;
}

const n = (value: number | bigint): AttributeValue => ({ N: String(value) });
const s = (value: string): AttributeValue => ({ S: value });

/**
 * `update` as expression parts. Every attribute goes through a placeholder
 * (`#uN`, `:uN`), so reserved words (state, result, ttl) need no care and
 * the caller's condition placeholders never collide.
 */
export function expressionOf(update: ItemUpdate): UpdateExpressionParts {
  const names: Record<string, string> = {};
  const values: Item = {};
  const sets = Object.entries(update.set).map(([name, value], i) => {
    names[`#u${i}`] = name;
    values[`:u${i}`] = value;
    return `#u${i} = :u${i}`;
  });
  const offset = sets.length;
  const removes = update.remove.map((name, i) => {
    names[`#u${offset + i}`] = name;
    return `#u${offset + i}`;
  });
  const clauses = [
    sets.length > 0 ? `SET ${sets.join(", ")}` : "",
    removes.length > 0 ? `REMOVE ${removes.join(", ")}` : "",
  ];
  return {
    UpdateExpression: clauses.filter((c) => c !== "").join(" "),
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}

/** `a` then `b`: what `b` sets wins, and nothing is both set and removed. */
export function mergeUpdates(a: ItemUpdate, b: ItemUpdate): ItemUpdate {
  const set = { ...a.set, ...b.set };
  const remove = [...new Set([...a.remove, ...b.remove])].filter((name) => !(name in set));
  return { set, remove };
}

/** A string attribute, removed when empty (an empty string says nothing worth storing). */
function setOrRemove(name: string, value: string): ItemUpdate {
  return value === "" ? { set: {}, remove: [name] } : { set: { [name]: s(value) }, remove: [] };
}

/**
 * The attempt list with the open attempt closed as `end` says, the job's
 * log having reached `highest` (the attempt's own events).
 */
function attemptsEndedBy(record: JobRecord, end: AttemptEnd, highest: bigint): JobAttempt[] {
  return appendAttempt(
    attemptsOf(record),
    closedAttempt(openAttemptOf(record), end, highest, record.sequenceBase),
  );
}

/** What closes the open attempt (when `end` is given) and leaves none open. */
function closeAttempt(
  record: JobRecord,
  end: AttemptEnd | undefined,
  highest: bigint,
): ItemUpdate {
  return {
    set: {
      open_started_at: n(0),
      ...(end === undefined
        ? {}
        : { attempts: attemptsAttribute(attemptsEndedBy(record, end, highest)) }),
    },
    remove: ["open_worker"],
  };
}

/** The job ends for good as `finish` says; the item expires `ttl` (Unix seconds) later. */
export function finishUpdate(
  record: JobRecord,
  finish: Finish,
  highest: bigint,
  nowMs: number,
  ttl: number,
): ItemUpdate {
  const ended: ItemUpdate = {
    set: {
      state: n(finish.state),
      result: { B: toBinary(JobResultSchema, finish.result) },
      lease_expires_at: n(0),
      not_before_ms: n(0),
      updated_at: n(nowMs),
      ttl: n(ttl),
    },
    // A job cancelled while it waited for dependencies waits no more.
    remove: ["pending_notice", "waiting_for"],
  };
  return mergeUpdates(
    mergeUpdates(ended, setOrRemove("failure_reason", finish.failureReason)),
    closeAttempt(record, finish.attemptEnd, highest),
  );
}

/** What a reschedule writes, and the ATTEMPT_END event it appends (if any). */
export interface RescheduleWrite {
  readonly update: ItemUpdate;
  readonly notice: JobEvent | undefined;
}

/**
 * The job waits SCHEDULED for its next attempt as `reschedule` says; its
 * notice, if any, takes the sequence after `highest` and reserves it.
 */
export function rescheduleUpdate(
  record: JobRecord,
  reschedule: Reschedule,
  highest: bigint,
  nowMs: number,
): RescheduleWrite {
  const notice = reschedule.notice === undefined
    ? undefined
    : noticeEvent(reschedule.notice, highest + 1n, nowMs);
  const waiting: ItemUpdate = {
    set: {
      state: n(reschedule.state),
      lease_expires_at: n(0),
      not_before_ms: n(reschedule.notBeforeMs),
      used_attempts: n(reschedule.usedAttempts),
      lost_attempts: n(reschedule.lostAttempts),
      updated_at: n(nowMs),
      ...(notice === undefined ? {} : {
        pending_notice: { B: toBinary(JobEventSchema, notice) },
        reserved_sequence: n(notice.sequence),
      }),
    },
    remove: notice === undefined ? ["pending_notice"] : [],
  };
  return {
    update: mergeUpdates(waiting, closeAttempt(record, reschedule.attemptEnd, highest)),
    notice,
  };
}

/** Where a lease's message came from, and who took it. */
export interface LeaseSource {
  readonly worker: string;
  readonly receiptHandle: string;
  readonly messageId: string;
}

/** What a lease writes, and the ATTEMPT_END event of the lost attempt it ends (if any). */
export interface LeaseWrite {
  readonly update: ItemUpdate;
  readonly notice: JobEvent | undefined;
}

/**
 * The job runs on the attempt `lease` opens. When the lease ends a lost one
 * (`lease.lost`), that attempt closes and its notice is written in the same
 * update, and the new attempt numbers its events after the notice.
 */
export function leaseUpdate(
  record: JobRecord,
  lease: Lease,
  highest: bigint,
  source: LeaseSource,
  nowMs: number,
): LeaseWrite {
  const lost = lease.lost === undefined
    ? undefined
    : rescheduleUpdate(record, lease.lost, highest, nowMs);
  const base = lost?.notice?.sequence ?? highest;
  const running: ItemUpdate = mergeUpdates({
    set: {
      state: n(lease.state),
      attempt: n(lease.attempt),
      lease_expires_at: n(lease.leaseExpiresAtMs),
      sequence_base: n(base),
      receipt_handle: s(source.receiptHandle),
      message_id: s(source.messageId),
      updated_at: n(nowMs),
      not_before_ms: n(0),
      open_started_at: n(nowMs),
    },
    // The notice a reschedule kept is stored by now (see takeLease in receive.ts).
    remove: ["pending_notice"],
  }, setOrRemove("open_worker", source.worker));
  return {
    update: lost === undefined ? running : mergeUpdates(lost.update, running),
    notice: lost?.notice,
  };
}

/** The dead letter is SCHEDULED again with a fresh budget, and no longer expires. */
export function redriveUpdate(redrive: Redrive, nowMs: number): ItemUpdate {
  return {
    set: {
      state: n(redrive.state),
      used_attempts: n(redrive.usedAttempts),
      lost_attempts: n(redrive.lostAttempts),
      not_before_ms: n(0),
      updated_at: n(nowMs),
    },
    remove: ["result", "failure_reason", "ttl", "pending_notice"],
  };
}

/** The notice a record keeps until its next lease (see the module comment). */
export function pendingNoticeOf(record: JobRecord): JobEvent | undefined {
  return record.pendingNotice === undefined
    ? undefined
    : fromBinary(JobEventSchema, record.pendingNotice);
}
