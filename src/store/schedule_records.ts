/**
 * The rules of a schedule's record, written once for every backend (pure):
 * which fields of a Schedule are its definition, what a put, a pause or a
 * resume does to the firing record, and when a firing moves it forward.
 * See schedule_store.ts for the guarantees these make.
 *
 * @module
 */
import { clone, create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { JobParamsSchema, type Schedule, ScheduleSchema } from "../../gen/job/v1/job_pb.ts";
import type { FiringRecord } from "./schedule_store.ts";

/** What a store keeps of a schedule apart from its definition. */
export interface ScheduleState {
  readonly paused: boolean;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
  /** The last firing handled; a new schedule's creation time. */
  readonly lastFiringMs: number;
  /** The job of the last firing that made one ("" when none has). */
  readonly lastJobId: string;
}

/** `schedule`'s definition alone: what a put stores (a copy). */
export function definitionOf(schedule: Schedule): Schedule {
  return create(ScheduleSchema, {
    name: schedule.name,
    cron: schedule.cron,
    timeZone: schedule.timeZone,
    overlap: schedule.overlap,
    catchUp: schedule.catchUp,
    queue: schedule.queue,
    owner: schedule.owner,
    ...(schedule.jobParams === undefined
      ? {}
      : { jobParams: clone(JobParamsSchema, schedule.jobParams) }),
  });
}

/** The schedule a read returns: its definition with its state. */
export function scheduleOf(definition: Schedule, state: ScheduleState): Schedule {
  const schedule = definitionOf(definition);
  schedule.paused = state.paused;
  schedule.createdAt = timestampFromMs(state.createdAtMs);
  schedule.updatedAt = timestampFromMs(state.updatedAtMs);
  schedule.lastFiringAt = timestampFromMs(state.lastFiringMs);
  schedule.lastJobId = state.lastJobId;
  return schedule;
}

/**
 * The state after a put at `nowMs`: a new schedule fires from its creation;
 * a replaced one keeps its creation time and firing record, except that a
 * replace that unpauses it resumes it (see {@link stateAfterPause}).
 */
export function stateAfterPut(
  existing: ScheduleState | undefined,
  paused: boolean,
  nowMs: number,
): ScheduleState {
  if (existing === undefined) {
    return { paused, createdAtMs: nowMs, updatedAtMs: nowMs, lastFiringMs: nowMs, lastJobId: "" };
  }
  return { ...stateAfterPause(existing, paused, nowMs), updatedAtMs: nowMs };
}

/** The state after a pause or resume at `nowMs`: a resume fires from now, not for the paused time. */
export function stateAfterPause(
  state: ScheduleState,
  paused: boolean,
  nowMs: number,
): ScheduleState {
  if (state.paused === paused) return state;
  return {
    ...state,
    paused,
    updatedAtMs: nowMs,
    lastFiringMs: paused ? state.lastFiringMs : Math.max(state.lastFiringMs, nowMs),
  };
}

/** Whether `firing` moves `state`'s record forward (only a later firing does). */
export function firingAdvances(state: ScheduleState, firing: FiringRecord): boolean {
  return firing.lastFiringMs > state.lastFiringMs;
}

/** The state after `firing` was recorded (see {@link firingAdvances}). */
export function stateAfterFiring(state: ScheduleState, firing: FiringRecord): ScheduleState {
  return {
    ...state,
    lastFiringMs: firing.lastFiringMs,
    lastJobId: firing.lastJobId ?? state.lastJobId,
  };
}
