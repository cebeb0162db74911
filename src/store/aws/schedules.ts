/**
 * The AWS ScheduleStore (see schedule_store.ts for the contract): schedules
 * live in the jobs table, as the idempotency claims do, so a deployment
 * needs no new table and no new permission.
 *
 * - A schedule is the item `schedule#<name>`: `definition` (the Schedule
 *   message of definitionOf, as bytes), `paused`, `schedule_created_ms`,
 *   `schedule_updated_ms`, `last_firing_ms` and `last_job_id` (absent when
 *   none). It has no `created_at`, `queue` or `request_id`, so it is in
 *   neither index and every job read and listing passes over it.
 * - The item `schedules#index` holds their names (`names`, a string set),
 *   so listing reads one item and then the schedules by key, never
 *   scanning the jobs.
 *
 * No transactions, as in the rest of the store: a put writes the schedule,
 * then adds its name to the index (ADD is idempotent, and is made again
 * when a create finds the schedule there, so a create cut short between
 * the two writes is healed by its retry); a delete takes the name out of
 * the index first, so one cut short leaves a schedule nobody lists (its
 * retry deletes it), never a listed name without a schedule. A name
 * without its schedule can still come of a create and a delete of the
 * same name racing; a list passes over it, and a create of the name makes
 * it whole again.
 *
 * Every change of a schedule is one conditional write, on what was read
 * (its update time and firing record) or, for a firing, on the firing
 * record being earlier: concurrent servers never lose each other's firing.
 *
 * @module
 */
import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Schedule, ScheduleSchema } from "../../../gen/job/v1/job_pb.ts";
import { MAX_SCHEDULES } from "../../protocol/limits.ts";
import {
  BackendUnavailableError,
  ScheduleExistsError,
  ScheduleNotFoundError,
  TooManySchedulesError,
} from "../errors.ts";
import {
  definitionOf,
  scheduleOf,
  type ScheduleState,
  stateAfterPause,
  stateAfterPut,
} from "../schedule_records.ts";
import type { FiringRecord, PutScheduleOptions, ScheduleStore } from "../schedule_store.ts";
import { BATCH_CONCURRENCY } from "./aws_limits.ts";
import { chunksOf, compareStrings, settleBounded } from "./batching.ts";
import { BATCH_GET_MAX, batchGetItems } from "./batch_get.ts";
import { type Item, SCHEDULE_INDEX_ID, SCHEDULE_PREFIX } from "./job_item.ts";
import { expressionOf, type ItemUpdate } from "./job_updates.ts";
import { type AwsStoreContext, num } from "./store_context.ts";

/** Tries of a conditional write on what was read, each after reading again. */
const WRITE_TRIES = 5;
/** DynamoDB's most keys per BatchGetItem. */

/** A schedule item, decoded. */
interface ScheduleRecord {
  readonly definition: Schedule;
  readonly state: ScheduleState;
}

/** Schedules in the AWS store's jobs table. */
export class AwsScheduleStore implements ScheduleStore {
  readonly #ctx: AwsStoreContext;

  constructor(ctx: AwsStoreContext) {
    this.#ctx = ctx;
  }

  async put(schedule: Schedule, options: PutScheduleOptions): Promise<Schedule> {
    const name = schedule.name;
    const definition = definitionOf(schedule);
    for (let tries = 1;; tries++) {
      // A create needs no read: its condition says whether the name is taken.
      const existing = options.replace ? await this.#read(name) : undefined;
      if (existing === undefined) await this.#assertRoomFor(name);
      const state = stateAfterPut(existing?.state, schedule.paused, this.#ctx.clock.now());
      if (await this.#putIf(scheduleItem(name, definition, state), existing?.state)) {
        await this.#updateIndex("ADD", name);
        return scheduleOf(definition, state);
      }
      if (!options.replace) {
        // It exists: listed, or left unlisted by a create cut short, which this heals.
        await this.#updateIndex("ADD", name);
        throw new ScheduleExistsError(name);
      }
      // Created, changed or deleted since it was read: put again on what it is now.
      if (tries >= WRITE_TRIES) {
        throw new BackendUnavailableError("put schedule", `schedule ${name} kept changing; retry`);
      }
    }
  }

  async get(name: string): Promise<Schedule> {
    const record = await this.#read(name);
    if (record === undefined) throw new ScheduleNotFoundError(name);
    return scheduleOf(record.definition, record.state);
  }

  async list(): Promise<Schedule[]> {
    const names = await this.#indexedNames();
    const chunks = await settleBounded(
      chunksOf(names, BATCH_GET_MAX),
      BATCH_CONCURRENCY,
      (chunk) => this.#readMany(chunk),
    );
    const schedules: Schedule[] = [];
    for (const chunk of chunks) {
      if (!chunk.ok) throw chunk.error;
      for (const record of chunk.value) schedules.push(scheduleOf(record.definition, record.state));
    }
    return schedules.sort((a, b) => compareStrings(a.name, b.name));
  }

  async setPaused(name: string, paused: boolean): Promise<Schedule> {
    for (let tries = 1;; tries++) {
      const read = await this.#read(name);
      if (read === undefined) throw new ScheduleNotFoundError(name);
      const state = stateAfterPause(read.state, paused, this.#ctx.clock.now());
      if (state === read.state) return scheduleOf(read.definition, state);
      const written = await this.#updateStateIf(name, state, read.state);
      if (written !== undefined) return scheduleOf(written.definition, written.state);
      if (tries >= WRITE_TRIES) {
        throw new BackendUnavailableError(
          "pause schedule",
          `schedule ${name} kept changing; retry`,
        );
      }
    }
  }

  async delete(name: string): Promise<void> {
    // Unlisted first: a delete cut short leaves no listed name without a schedule.
    await this.#updateIndex("DELETE", name);
    const out = await this.#ctx.call(
      "DynamoDB DeleteItem",
      () =>
        this.#ctx.ddb.send(
          new DeleteItemCommand({
            TableName: this.#ctx.jobsTable,
            Key: scheduleKey(name),
            ConditionExpression: "attribute_exists(job_id)",
          }),
          this.#ctx.abort(),
        ),
      { ignoreConditionFailure: true },
    );
    if (out === undefined) throw new ScheduleNotFoundError(name);
  }

  async recordFiring(name: string, firing: FiringRecord): Promise<boolean> {
    // stateAfterFiring as one write, made only when firingAdvances holds (the
    // condition): of several servers recording one firing, one write lands.
    // A schedule that is gone has no last_firing_ms, so it fails the condition.
    const jobId = firing.lastJobId;
    const out = await this.#ctx.call(
      "DynamoDB UpdateItem",
      () =>
        this.#ctx.ddb.send(
          new UpdateItemCommand({
            TableName: this.#ctx.jobsTable,
            Key: scheduleKey(name),
            UpdateExpression: jobId === undefined
              ? "SET last_firing_ms = :firing"
              : jobId === ""
              ? "SET last_firing_ms = :firing REMOVE last_job_id"
              : "SET last_firing_ms = :firing, last_job_id = :job",
            ConditionExpression: "last_firing_ms < :firing",
            ExpressionAttributeValues: {
              ":firing": num(firing.lastFiringMs),
              ...(jobId === undefined || jobId === "" ? {} : { ":job": { S: jobId } }),
            },
          }),
          this.#ctx.abort(),
        ),
      { ignoreConditionFailure: true },
    );
    return out !== undefined;
  }

  /** The schedule `name` (a consistent read), or undefined when there is none. */
  async #read(name: string): Promise<ScheduleRecord | undefined> {
    const out = await this.#ctx.call("DynamoDB GetItem", () =>
      this.#ctx.ddb.send(
        new GetItemCommand({
          TableName: this.#ctx.jobsTable,
          Key: scheduleKey(name),
          ConsistentRead: true,
        }),
        this.#ctx.abort(),
      ));
    return out?.Item === undefined ? undefined : scheduleRecordOf(out.Item);
  }

  /**
   * The schedules of `names` that exist (one BatchGetItem, consistent, of
   * at most 100 keys), sending again the keys DynamoDB leaves unprocessed.
   */
  async #readMany(names: readonly string[]): Promise<ScheduleRecord[]> {
    const records: ScheduleRecord[] = [];
    for (const item of await batchGetItems(this.#ctx, names.map(scheduleKey))) {
      const record = scheduleRecordOf(item);
      if (record !== undefined) records.push(record);
    }
    return records;
  }

  /** The names the index lists (a consistent read). */
  async #indexedNames(): Promise<string[]> {
    const out = await this.#ctx.call("DynamoDB GetItem", () =>
      this.#ctx.ddb.send(
        new GetItemCommand({
          TableName: this.#ctx.jobsTable,
          Key: indexKey(),
          ConsistentRead: true,
          ProjectionExpression: "#names",
          ExpressionAttributeNames: { "#names": "names" },
        }),
        this.#ctx.abort(),
      ));
    return out?.Item?.names?.SS ?? [];
  }

  /**
   * Refuses a new schedule when the index lists MAX_SCHEDULES names. The
   * count is read before the write, not with it: creates racing at the
   * limit may each see room and overshoot it by their number (a few, at
   * most the creates in flight at once), which only delays the refusal of
   * the next one. A name the index lacks but whose schedule exists (a
   * create cut short) is let through, for its put to answer "exists".
   */
  async #assertRoomFor(name: string): Promise<void> {
    const names = await this.#indexedNames();
    if (names.length < MAX_SCHEDULES || names.includes(name)) return;
    if (await this.#read(name) !== undefined) return;
    throw new TooManySchedulesError(MAX_SCHEDULES);
  }

  /** Adds `name` to the index or deletes it from it (a set: either is idempotent). */
  async #updateIndex(action: "ADD" | "DELETE", name: string): Promise<void> {
    await this.#ctx.call("DynamoDB UpdateItem", () =>
      this.#ctx.ddb.send(
        new UpdateItemCommand({
          TableName: this.#ctx.jobsTable,
          Key: indexKey(),
          UpdateExpression: `${action} #names :name`,
          ExpressionAttributeNames: { "#names": "names" },
          ExpressionAttributeValues: { ":name": { SS: [name] } },
        }),
        this.#ctx.abort(),
      ));
  }

  /**
   * Puts `item`: a new schedule if `seen` is undefined, else over the one
   * read with state `seen`, unchanged since. False when that did not hold.
   */
  async #putIf(item: Item, seen: ScheduleState | undefined): Promise<boolean> {
    const out = await this.#ctx.call(
      "DynamoDB PutItem",
      () =>
        this.#ctx.ddb.send(
          new PutItemCommand({
            TableName: this.#ctx.jobsTable,
            Item: item,
            ...(seen === undefined
              ? { ConditionExpression: "attribute_not_exists(job_id)" }
              : unchangedSince(seen)),
          }),
          this.#ctx.abort(),
        ),
      { ignoreConditionFailure: true },
    );
    return out !== undefined;
  }

  /** Writes `state` over a schedule still as `seen`; undefined when it changed first (or is gone). */
  async #updateStateIf(
    name: string,
    state: ScheduleState,
    seen: ScheduleState,
  ): Promise<ScheduleRecord | undefined> {
    const update = expressionOf(stateAttributes(state));
    const condition = unchangedSince(seen);
    const out = await this.#ctx.call(
      "DynamoDB UpdateItem",
      () =>
        this.#ctx.ddb.send(
          new UpdateItemCommand({
            TableName: this.#ctx.jobsTable,
            Key: scheduleKey(name),
            ...update,
            ConditionExpression: condition.ConditionExpression,
            ExpressionAttributeValues: {
              ...update.ExpressionAttributeValues,
              ...condition.ExpressionAttributeValues,
            },
            ReturnValues: "ALL_NEW",
          }),
          this.#ctx.abort(),
        ),
      { ignoreConditionFailure: true },
    );
    return out?.Attributes === undefined ? undefined : scheduleRecordOf(out.Attributes);
  }
}

// ------------------------------------------------ the item layout (pure)

function scheduleKey(name: string): Item {
  return { job_id: { S: `${SCHEDULE_PREFIX}${name}` } };
}

function indexKey(): Item {
  return { job_id: { S: SCHEDULE_INDEX_ID } };
}

/**
 * The condition that a schedule is as it was read: its update time and
 * firing record unchanged. Every write moves one of them; two writes in one
 * millisecond that leave the firing record alone may both pass, the later
 * one winning, and neither loses a firing.
 */
function unchangedSince(seen: ScheduleState): {
  ConditionExpression: string;
  ExpressionAttributeValues: Item;
} {
  return {
    ConditionExpression: "schedule_updated_ms = :seen_updated AND last_firing_ms = :seen_firing",
    ExpressionAttributeValues: {
      ":seen_updated": num(seen.updatedAtMs),
      ":seen_firing": num(seen.lastFiringMs),
    },
  };
}

/** The attributes that hold `state` (an empty last job is no attribute). */
function stateAttributes(state: ScheduleState): ItemUpdate {
  return {
    set: {
      paused: { BOOL: state.paused },
      schedule_created_ms: num(state.createdAtMs),
      schedule_updated_ms: num(state.updatedAtMs),
      last_firing_ms: num(state.lastFiringMs),
      ...(state.lastJobId === "" ? {} : { last_job_id: { S: state.lastJobId } }),
    },
    remove: state.lastJobId === "" ? ["last_job_id"] : [],
  };
}

/** The item of schedule `name`: its definition and state. */
function scheduleItem(name: string, definition: Schedule, state: ScheduleState): Item {
  return {
    ...scheduleKey(name),
    definition: { B: toBinary(ScheduleSchema, definition) },
    ...stateAttributes(state).set,
  };
}

/** Decodes a schedule item; undefined for an item that is none. */
function scheduleRecordOf(item: Item): ScheduleRecord | undefined {
  const bytes = item.definition?.B;
  if (bytes === undefined) return undefined;
  return {
    definition: fromBinary(ScheduleSchema, bytes),
    state: {
      paused: item.paused?.BOOL ?? false,
      createdAtMs: Number(item.schedule_created_ms?.N ?? "0"),
      updatedAtMs: Number(item.schedule_updated_ms?.N ?? "0"),
      lastFiringMs: Number(item.last_firing_ms?.N ?? "0"),
      lastJobId: item.last_job_id?.S ?? "",
    },
  };
}
