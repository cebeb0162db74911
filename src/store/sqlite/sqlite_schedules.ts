/**
 * The SQLite ScheduleStore: the `schedules` table of the store's database
 * (see schema.ts, and schedule_store.ts for the contract). The rules of a
 * schedule's record are schedule_records.ts's; this module persists them.
 * Writes go through the store's SqlRunner, so a full disk fails them with
 * StoreFullError (guarded_statement.ts) while reads go on.
 *
 * @module
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Schedule, ScheduleSchema } from "../../../gen/job/v1/job_pb.ts";
import type { Clock } from "../../clock.ts";
import { MAX_SCHEDULES } from "../../protocol/limits.ts";
import { ScheduleExistsError, ScheduleNotFoundError, TooManySchedulesError } from "../errors.ts";
import {
  definitionOf,
  scheduleOf,
  type ScheduleState,
  stateAfterPause,
  stateAfterPut,
} from "../schedule_records.ts";
import type { FiringRecord, PutScheduleOptions, ScheduleStore } from "../schedule_store.ts";
import type { SqlRunner } from "./sql_runner.ts";

/** One row of `schedules`, as `SELECT *` reads it. */
interface ScheduleRow {
  name: string;
  definition: Uint8Array;
  paused: number;
  created_at_ms: number;
  updated_at_ms: number;
  last_firing_ms: number;
  last_job_id: string;
}

const SQL = {
  byName: "SELECT * FROM schedules WHERE name = ?",
  all: "SELECT * FROM schedules ORDER BY name",
  count: "SELECT COUNT(*) AS count FROM schedules",
  /** The row written whole, definition and state, as the rules decided them. */
  write: `INSERT OR REPLACE INTO schedules
    (name, definition, paused, created_at_ms, updated_at_ms, last_firing_ms, last_job_id)
    VALUES (?, ?, ?, ?, ?, ?, ?)`,
  setState: `UPDATE schedules SET paused = ?, updated_at_ms = ?, last_firing_ms = ?,
    last_job_id = ? WHERE name = ?`,
  /**
   * firingAdvances and stateAfterFiring (schedule_records.ts) as one
   * conditional write, so that of several schedulers only the first moves
   * the record: only a later firing, and no job (NULL) keeps the last one.
   */
  recordFiring: `UPDATE schedules SET last_firing_ms = ?, last_job_id = COALESCE(?, last_job_id)
    WHERE name = ? AND last_firing_ms < ?`,
  delete: "DELETE FROM schedules WHERE name = ?",
} as const;

function stateOfRow(row: ScheduleRow): ScheduleState {
  return {
    paused: row.paused !== 0,
    createdAtMs: row.created_at_ms,
    updatedAtMs: row.updated_at_ms,
    lastFiringMs: row.last_firing_ms,
    lastJobId: row.last_job_id,
  };
}

function scheduleOfRow(row: ScheduleRow): Schedule {
  return scheduleOf(fromBinary(ScheduleSchema, row.definition), stateOfRow(row));
}

/** Schedules in the SQLite store's database. */
export class SqliteScheduleStore implements ScheduleStore {
  readonly #run: SqlRunner;
  readonly #clock: Clock;
  readonly #assertOpen: () => void;

  /** `assertOpen` throws StoreClosedError once the store is closed. */
  constructor(run: SqlRunner, clock: Clock, assertOpen: () => void) {
    this.#run = run;
    this.#clock = clock;
    this.#assertOpen = assertOpen;
  }

  async put(schedule: Schedule, options: PutScheduleOptions): Promise<Schedule> {
    this.#assertOpen();
    const now = this.#clock.now();
    const definition = definitionOf(schedule);
    // The existence and count checks and the write: one transaction.
    const state = this.#run.transaction(() => {
      const existing = this.#row(schedule.name);
      if (existing !== undefined && !options.replace) {
        throw new ScheduleExistsError(schedule.name);
      }
      if (existing === undefined) {
        const { count } = this.#run.sql(SQL.count).get() as { count: number };
        if (count >= MAX_SCHEDULES) throw new TooManySchedulesError(MAX_SCHEDULES);
      }
      const state = stateAfterPut(
        existing === undefined ? undefined : stateOfRow(existing),
        schedule.paused,
        now,
      );
      this.#run.sql(SQL.write).run(
        schedule.name,
        toBinary(ScheduleSchema, definition),
        state.paused ? 1 : 0,
        state.createdAtMs,
        state.updatedAtMs,
        state.lastFiringMs,
        state.lastJobId,
      );
      return state;
    });
    return scheduleOf(definition, state);
  }

  async get(name: string): Promise<Schedule> {
    this.#assertOpen();
    return scheduleOfRow(this.#existingRow(name));
  }

  async list(): Promise<Schedule[]> {
    this.#assertOpen();
    const rows = this.#run.sql(SQL.all).all() as unknown as ScheduleRow[];
    return rows.map(scheduleOfRow);
  }

  async setPaused(name: string, paused: boolean): Promise<Schedule> {
    this.#assertOpen();
    const now = this.#clock.now();
    return this.#run.transaction(() => {
      const row = this.#existingRow(name);
      const before = stateOfRow(row);
      const after = stateAfterPause(before, paused, now);
      if (after !== before) {
        this.#run.sql(SQL.setState).run(
          after.paused ? 1 : 0,
          after.updatedAtMs,
          after.lastFiringMs,
          after.lastJobId,
          name,
        );
      }
      return scheduleOf(fromBinary(ScheduleSchema, row.definition), after);
    });
  }

  async delete(name: string): Promise<void> {
    this.#assertOpen();
    const { changes } = this.#run.sql(SQL.delete).run(name);
    if (Number(changes) === 0) throw new ScheduleNotFoundError(name);
  }

  async recordFiring(name: string, firing: FiringRecord): Promise<boolean> {
    this.#assertOpen();
    const { changes } = this.#run.sql(SQL.recordFiring).run(
      firing.lastFiringMs,
      firing.lastJobId ?? null,
      name,
      firing.lastFiringMs,
    );
    return Number(changes) > 0;
  }

  #row(name: string): ScheduleRow | undefined {
    return this.#run.sql(SQL.byName).get(name) as ScheduleRow | undefined;
  }

  #existingRow(name: string): ScheduleRow {
    const row = this.#row(name);
    if (row === undefined) throw new ScheduleNotFoundError(name);
    return row;
  }
}
