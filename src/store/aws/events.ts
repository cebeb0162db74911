/**
 * A job's events on DynamoDB: publishing them (numbers reserved behind the
 * lease fence, each event a conditional put keyed by (job_id, sequence), so
 * a retried publish writes nothing twice), and the event log a live tail
 * reads.
 *
 * A live tail on one server sees events another server stored by polling
 * the events table while it waits: every 100 ms while the job is producing
 * output, backing off to 1 s once it has been quiet for a few seconds.
 * Writes made through this server wake its own tails at once.
 *
 * @module
 */
import { PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb";
import type { JobEvent } from "../../../gen/job/v1/job_pb.ts";
import { sequenceEvents } from "../../protocol/event_sequencing.ts";
import { eventTimestampMs } from "../../protocol/event_position.ts";
import { isFinished } from "../../protocol/job_state.ts";
import type { EventLogSource } from "../event_tail.ts";
import { decidePublish } from "../lifecycle.ts";
import { capOutput } from "../output_cap.ts";
import { settled } from "./finish_job.ts";
import {
  effectiveState,
  eventItem,
  eventOf,
  type Item,
  type JobRecord,
  publishStateOf,
  TOP_EVENT_ATTRIBUTES,
  viewOf,
} from "./job_item.ts";
import { pendingNoticeOf } from "./job_updates.ts";
import { fencedUpdate, leasedRecord } from "./lease_fence.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

/** Live-tail polling: fastest, slowest, and the quiet time after which it slows. */
const TAIL_POLL_MIN_MS = 100;
const TAIL_POLL_MAX_MS = 1_000;
const TAIL_QUIET_MS = 4_000;
/** Jobs whose last activity a store remembers for the tail's poll backoff. */
const ACTIVITY_MEMORY = 10_000;

/**
 * Stores `events` of the job `taskToken` leases, numbered after what is
 * stored, within the job's output cap; answers how many were stored.
 */
export async function publishEvents(
  ctx: AwsStoreContext,
  taskToken: string,
  events: readonly JobEvent[],
  maxEventBytes: number,
): Promise<number> {
  const now = ctx.clock.now();
  const { record, holder } = await leasedRecord(ctx, taskToken);
  decidePublish(viewOf(record), holder, now);
  const state = publishStateOf(record, await topEvent(ctx, record.jobId));
  const capped = capOutput(
    sequenceEvents(events, state, now, maxEventBytes),
    state,
    ctx.maxJobOutputBytes,
  );
  const ttl = ctx.ttlSeconds(now);
  let stored = 0;
  if (capped.events.length > 0) {
    // Reserve the numbers on the job item, fenced like every lease write:
    // a worker whose lease ended meanwhile is refused here and writes
    // nothing, and the next attempt numbers its events above any range
    // reserved before it began (see claim in receive.ts), so a late write
    // can never take a number the next attempt uses.
    await fencedUpdate(ctx, record, now, {
      UpdateExpression: "SET reserved_sequence = :high",
      ConditionExtra: "(attribute_not_exists(reserved_sequence) OR reserved_sequence <= :high)",
      ExpressionAttributeValues: { ":high": num(capped.highest) },
    });
  }
  for (const [i, event] of capped.events.entries()) {
    const put = await ctx.call(
      "DynamoDB PutItem",
      () =>
        ctx.ddb.send(
          new PutItemCommand({
            TableName: ctx.eventsTable,
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
          ctx.abort(),
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
    await fencedUpdate(ctx, record, now, {
      UpdateExpression:
        "SET output_dropped_attempt = :attempt, output_dropped_local_end = :dropped",
      ConditionExtra:
        "(attribute_not_exists(output_dropped_local_end) OR output_dropped_attempt <> :attempt OR output_dropped_local_end <= :dropped)",
      ExpressionAttributeValues: { ":dropped": num(capped.localHighest) },
    });
  }
  if (stored > 0) ctx.jobWatchers.notify(record.jobId);
  return stored;
}

/** The highest sequence of a job's log, and its highest event item (undefined when none). */
export interface LogTop {
  readonly highest: bigint;
  readonly top: Item | undefined;
}

/**
 * How far `record`'s log reaches: above what is stored and what an attempt
 * reserved but never wrote (a late write of its own), and not below the
 * current attempt's base.
 */
export async function logTopOf(ctx: AwsStoreContext, record: JobRecord): Promise<LogTop> {
  // Events need a lease, so a job never taken has none: skip the query.
  const top = record.attempt === 0 ? undefined : await topEvent(ctx, record.jobId);
  let highest = BigInt(top?.sequence?.N ?? "0");
  if (record.reservedSequence > highest) highest = record.reservedSequence;
  if (record.sequenceBase > highest) highest = record.sequenceBase;
  return { highest, top };
}

/**
 * Stores an ATTEMPT_END notice a write decided, unless it (or an event past
 * it) is stored already. It carries the job's output so far, from `top` (the
 * highest event below it), so the output cap keeps counting across attempts.
 */
export async function putNotice(
  ctx: AwsStoreContext,
  jobId: string,
  notice: JobEvent,
  top: Item | undefined,
): Promise<void> {
  if (BigInt(top?.sequence?.N ?? "0") >= notice.sequence) return;
  const now = ctx.clock.now();
  const item = eventItem(jobId, notice, eventTimestampMs(notice, now), ctx.ttlSeconds(now), {
    localEnd: 0n,
    storedBytes: Number(top?.output_bytes?.N ?? "0"),
    truncated: top?.output_truncated?.BOOL ?? false,
  });
  const put = await ctx.call(
    "DynamoDB PutItem",
    () =>
      ctx.ddb.send(
        new PutItemCommand({
          TableName: ctx.eventsTable,
          Item: item,
          // Put before, by the write's own server or the next lease's.
          ConditionExpression: "attribute_not_exists(job_id)",
        }),
        ctx.abort(),
      ),
    { ignoreConditionFailure: true },
  );
  if (put !== undefined) ctx.jobWatchers.notify(jobId);
}

/**
 * Stores the notice `record` keeps, if it has one and its put was cut
 * short; `log` is the record's log top when the caller has read it.
 */
export async function repairNotice(
  ctx: AwsStoreContext,
  record: JobRecord,
  log?: LogTop,
): Promise<void> {
  const notice = pendingNoticeOf(record);
  if (notice === undefined) return;
  await putNotice(ctx, record.jobId, notice, (log ?? await logTopOf(ctx, record)).top);
}

/** The highest event item of `jobId`, with the attributes publishStateOf reads. */
async function topEvent(ctx: AwsStoreContext, jobId: string): Promise<Item | undefined> {
  const out = await ctx.call("DynamoDB Query", () =>
    ctx.ddb.send(
      new QueryCommand({
        TableName: ctx.eventsTable,
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
      ctx.abort(),
    ));
  return out?.Items?.[0];
}

/** The event log a tail of this store reads, woken by this server's writes and by polling. */
export function eventLogSource(ctx: AwsStoreContext): EventLogSource {
  /** When each tailed job last showed new events, for the tail's poll backoff. */
  const lastActivity = new Map<string, number>();

  /** How long a tail of `jobId` waits before reading again: short while it is busy. */
  const pollDelay = (jobId: string): number => {
    const last = lastActivity.get(jobId);
    if (last === undefined) return TAIL_POLL_MIN_MS;
    const quietMs = ctx.clock.now() - last;
    return quietMs >= TAIL_QUIET_MS ? TAIL_POLL_MAX_MS : TAIL_POLL_MIN_MS;
  };

  const noteActivity = (jobId: string, now: number): void => {
    lastActivity.delete(jobId);
    lastActivity.set(jobId, now);
    // Remember only the most recently active jobs.
    if (lastActivity.size > ACTIVITY_MEMORY) {
      lastActivity.delete(lastActivity.keys().next().value!);
    }
  };

  return {
    readEvents: async (jobId, fromSequence, limit) => {
      ctx.assertOpen();
      const out = await ctx.call("DynamoDB Query", () =>
        ctx.ddb.send(
          new QueryCommand({
            TableName: ctx.eventsTable,
            KeyConditionExpression: "job_id = :job AND #seq >= :from",
            ExpressionAttributeNames: { "#seq": "sequence" },
            ExpressionAttributeValues: { ":job": { S: jobId }, ":from": num(fromSequence) },
            ConsistentRead: true,
            Limit: limit,
          }),
          ctx.abort(),
        ));
      const now = ctx.clock.now();
      const events = (out?.Items ?? []).flatMap((item) => eventOf(item, now) ?? []);
      if (events.length > 0) noteActivity(jobId, now);
      return events;
    },
    isFinished: async (jobId) => {
      ctx.assertOpen();
      const record = await settled(ctx, await ctx.record(jobId));
      return isFinished(effectiveState(record, ctx.clock.now()));
    },
    waitForChange: (jobId, signal) => {
      // Our own writes wake the tail at once; another server's show up at the next poll.
      const wake = new AbortController();
      const onAbort = () => wake.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      const local = ctx.jobWatchers.wait(jobId, { signal: wake.signal });
      const polled = ctx.clock.sleep(pollDelay(jobId), wake.signal);
      return Promise.race([local, polled]).finally(() => {
        signal.removeEventListener("abort", onAbort);
        wake.abort();
      });
    },
  };
}
