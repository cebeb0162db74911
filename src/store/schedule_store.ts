/**
 * The ScheduleStore contract: where cron schedules live, next to the jobs
 * they make (every JobStore has one, as `schedules`). A schedule is its
 * definition (name, timing, policies, the job each firing enqueues, owner),
 * whether it is paused, and its firing record: the last firing a scheduler
 * handled and the job that firing made.
 *
 * Guarantees every backend gives (tests/store/schedule_conformance.ts checks each):
 * - Names are unique; creating a name that exists fails unless replacing,
 *   and a replace keeps the creation time and the firing record, so a
 *   firing is never handled twice because its schedule was edited.
 * - A new schedule's last firing is its creation time: it fires from then
 *   on, never for times before it existed.
 * - {@link ScheduleStore.recordFiring} only moves the record forward (a
 *   conditional write): of several schedulers handling the same firing, one
 *   records it; a record for an earlier firing changes nothing.
 * - Resuming a paused schedule moves its last firing to the resume time,
 *   so the firings that fell while it was paused do not run.
 * - At most MAX_SCHEDULES schedules (protocol/limits.ts); creating one more
 *   fails with TooManySchedulesError.
 * - Every method returns copies the caller may keep; `next_firings` is
 *   never set (it is computed on reads by the server).
 *
 * @module
 */
import type { Schedule } from "../../gen/job/v1/job_pb.ts";

/** How {@link ScheduleStore.put} treats a name that exists. */
export interface PutScheduleOptions {
  /** Replace a schedule of the same name instead of failing with ScheduleExistsError. */
  readonly replace: boolean;
}

/** A firing a scheduler handled. */
export interface FiringRecord {
  /** The firing time (Unix ms); the record moves only to a later one. */
  readonly lastFiringMs: number;
  /** The job the firing made; undefined keeps the job recorded before (a skipped firing). */
  readonly lastJobId?: string;
}

/** Cron schedules of one store. */
export interface ScheduleStore {
  /**
   * Stores `schedule`'s definition: name, cron, time_zone, overlap,
   * catch_up, queue, job_params, paused and owner (its other fields are the
   * store's). Returns the stored schedule.
   * @throws {ScheduleExistsError} when the name exists and `replace` is false.
   * @throws {TooManySchedulesError} when the store is full.
   */
  put(schedule: Schedule, options: PutScheduleOptions): Promise<Schedule>;

  /**
   * Returns one schedule.
   * @throws {ScheduleNotFoundError}
   */
  get(name: string): Promise<Schedule>;

  /** Returns every schedule, by name. */
  list(): Promise<Schedule[]>;

  /**
   * Pauses or resumes a schedule; resuming moves its last firing to now.
   * Returns the schedule after it.
   * @throws {ScheduleNotFoundError}
   */
  setPaused(name: string, paused: boolean): Promise<Schedule>;

  /**
   * Deletes a schedule; the jobs it made stay.
   * @throws {ScheduleNotFoundError}
   */
  delete(name: string): Promise<void>;

  /**
   * Records a handled firing if it is later than the one recorded; says
   * whether it was (false: another scheduler was first, or the schedule is gone).
   */
  recordFiring(name: string, firing: FiringRecord): Promise<boolean>;
}
