/**
 * The in-memory ScheduleStore: a map of definitions and their state, for
 * the memory JobStore (see schedule_store.ts for the contract).
 *
 * @module
 */
import type { Schedule } from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import { MAX_SCHEDULES } from "../protocol/limits.ts";
import { ScheduleExistsError, ScheduleNotFoundError, TooManySchedulesError } from "./errors.ts";
import {
  definitionOf,
  firingAdvances,
  scheduleOf,
  type ScheduleState,
  stateAfterFiring,
  stateAfterPause,
  stateAfterPut,
} from "./schedule_records.ts";
import type { FiringRecord, PutScheduleOptions, ScheduleStore } from "./schedule_store.ts";

interface Entry {
  readonly definition: Schedule;
  state: ScheduleState;
}

/** Schedules kept in this process's memory. */
export class MemoryScheduleStore implements ScheduleStore {
  readonly #entries = new Map<string, Entry>();
  readonly #clock: Clock;
  readonly #assertOpen: () => void;

  /** `assertOpen` throws once the JobStore that holds these schedules is closed. */
  constructor(clock: Clock, assertOpen: () => void) {
    this.#clock = clock;
    this.#assertOpen = assertOpen;
  }

  async put(schedule: Schedule, options: PutScheduleOptions): Promise<Schedule> {
    this.#assertOpen();
    const existing = this.#entries.get(schedule.name);
    if (existing !== undefined && !options.replace) throw new ScheduleExistsError(schedule.name);
    if (existing === undefined && this.#entries.size >= MAX_SCHEDULES) {
      throw new TooManySchedulesError(MAX_SCHEDULES);
    }
    const entry: Entry = {
      definition: definitionOf(schedule),
      state: stateAfterPut(existing?.state, schedule.paused, this.#clock.now()),
    };
    this.#entries.set(schedule.name, entry);
    return scheduleOf(entry.definition, entry.state);
  }

  async get(name: string): Promise<Schedule> {
    this.#assertOpen();
    const entry = this.#entry(name);
    return scheduleOf(entry.definition, entry.state);
  }

  async list(): Promise<Schedule[]> {
    this.#assertOpen();
    return [...this.#entries.keys()].sort().map((name) => {
      const entry = this.#entries.get(name)!;
      return scheduleOf(entry.definition, entry.state);
    });
  }

  async setPaused(name: string, paused: boolean): Promise<Schedule> {
    this.#assertOpen();
    const entry = this.#entry(name);
    entry.state = stateAfterPause(entry.state, paused, this.#clock.now());
    return scheduleOf(entry.definition, entry.state);
  }

  async delete(name: string): Promise<void> {
    this.#assertOpen();
    if (!this.#entries.delete(name)) throw new ScheduleNotFoundError(name);
  }

  async recordFiring(name: string, firing: FiringRecord): Promise<boolean> {
    this.#assertOpen();
    const entry = this.#entries.get(name);
    if (entry === undefined || !firingAdvances(entry.state, firing)) return false;
    entry.state = stateAfterFiring(entry.state, firing);
    return true;
  }

  #entry(name: string): Entry {
    const entry = this.#entries.get(name);
    if (entry === undefined) throw new ScheduleNotFoundError(name);
    return entry;
  }
}
