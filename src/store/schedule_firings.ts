/**
 * When a schedule fires, decided as the job lifecycle decides a job's state
 * (pure): the next firings of a timing, which firings a scheduler's tick
 * makes jobs for, and the key that makes each firing one job.
 *
 * - **Exactly one job per firing.** A firing's job is enqueued with the
 *   request_id {@link firingRequestId}: every store makes one job per
 *   request_id, so schedulers on several orchestrators over the same
 *   tables, or one retrying after a crash, enqueue it once.
 * - **Missed firings.** A tick makes jobs for the firings since the last one
 *   it recorded. One that is more than {@link ON_TIME_MS} late was missed
 *   (no scheduler ran): with catch-up "latest" the latest missed firing
 *   runs once, with "none" missed firings are skipped.
 * - **DST.** Firings are croner's, in the schedule's zone: a local time that
 *   does not exist (02:30 on the spring-forward night) fires at the first
 *   time after it, one that occurs twice (the fall-back night) fires once.
 *
 * @module
 */
import { type CatchUpPolicy, cronOf, type ScheduleTiming } from "../protocol/schedule_spec.ts";

/** How late a firing may be found and still be on time (a tick, a slow server). */
export const ON_TIME_MS = 60_000;

/** The next `count` firings of `timing` after `afterMs` (Unix ms), in order. */
export function nextFirings(timing: ScheduleTiming, afterMs: number, count: number): number[] {
  return cronOf(timing).nextRuns(count, new Date(afterMs)).map((d) => d.getTime());
}

/** What a scheduler's tick at `nowMs` does for one schedule. */
export interface FiringDecision {
  /** Firing times to enqueue a job for, oldest first. */
  readonly fire: readonly number[];
  /** The firing to record as the last one handled (unchanged when none was due). */
  readonly lastFiringMs: number;
  /** When the next firing is due, for the tick's timer; undefined when the timing has none. */
  readonly nextFiringMs: number | undefined;
}

/** Most due firings one tick looks at (a seconds schedule after a long stop has many). */
const MAX_DUE_SCAN = 1_000;

/**
 * The firings due at `nowMs` since `lastFiringMs` (the last one handled; a
 * new schedule starts from its creation time), with `catchUp` for those
 * missed.
 */
export function decideFirings(
  timing: ScheduleTiming,
  state: { readonly lastFiringMs: number; readonly catchUp: CatchUpPolicy },
  nowMs: number,
): FiringDecision {
  const cron = cronOf(timing);
  const due: number[] = [];
  let after = new Date(state.lastFiringMs);
  let next: number | undefined;
  for (let n = 0; n < MAX_DUE_SCAN; n++) {
    const run = cron.nextRun(after);
    if (run === null) break;
    const at = run.getTime();
    if (at > nowMs) {
      next = at;
      break;
    }
    due.push(at);
    after = run;
  }
  if (due.length === 0) {
    return { fire: [], lastFiringMs: state.lastFiringMs, nextFiringMs: next };
  }
  const latest = due[due.length - 1]!;
  const onTime = due.filter((at) => nowMs - at <= ON_TIME_MS);
  const fire = onTime.length > 0 ? onTime : state.catchUp === "latest" ? [latest] : [];
  // Past the scan's end (a seconds schedule stopped for long), start over from now.
  const lastFiringMs = due.length === MAX_DUE_SCAN ? nowMs : latest;
  return {
    fire,
    lastFiringMs,
    nextFiringMs: next ?? cron.nextRun(new Date(lastFiringMs))?.getTime(),
  };
}

/** The request_id of the job of `schedule`'s firing at `firingMs`: one job per firing. */
export function firingRequestId(schedule: string, firingMs: number): string {
  return `schedule:${schedule}:${new Date(firingMs).toISOString()}`;
}
