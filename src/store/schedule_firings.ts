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
import { FIRING_REQUEST_ID_PREFIX } from "../protocol/schedule_keys.ts";

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
  /** Due firings that were missed and do not run (at least this many, past the scan's end). */
  readonly missed: number;
}

/** Most due firings one tick walks (a seconds schedule after a long stop has many). */
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
  const scan = dueFirings(cron, state.lastFiringMs, nowMs);
  if (scan.due.length === 0) {
    return { fire: [], lastFiringMs: state.lastFiringMs, nextFiringMs: scan.next, missed: 0 };
  }
  let due = scan.due;
  let latest = due[due.length - 1]!;
  let missedBefore = 0;
  if (scan.capped) {
    // Past the walk's end (a seconds schedule stopped for long): the last
    // minute's firings are walked afresh, and the latest firing is found
    // backwards from now, so neither is lost behind the cap.
    const recent = dueFirings(cron, Math.max(state.lastFiringMs, nowMs - ON_TIME_MS - 1), nowMs);
    latest = cron.previousRuns(1, new Date(nowMs + 1))[0]?.getTime() ?? latest;
    missedBefore = MAX_DUE_SCAN;
    due = recent.due.length > 0 ? recent.due : [latest];
  }
  const onTime = due.filter((at) => nowMs - at <= ON_TIME_MS);
  const fire = onTime.length > 0 ? onTime : state.catchUp === "latest" ? [latest] : [];
  return {
    fire,
    lastFiringMs: Math.max(latest, ...due),
    nextFiringMs: cron.nextRun(new Date(Math.max(latest, ...due)))?.getTime(),
    missed: missedBefore + due.length - fire.length,
  };
}

/** The firings after `afterMs` up to `nowMs`, walked up to MAX_DUE_SCAN, and the next one after. */
function dueFirings(
  cron: ReturnType<typeof cronOf>,
  afterMs: number,
  nowMs: number,
): { due: number[]; capped: boolean; next: number | undefined } {
  const due: number[] = [];
  let after = new Date(afterMs);
  for (let n = 0; n < MAX_DUE_SCAN; n++) {
    const run = cron.nextRun(after);
    if (run === null) return { due, capped: false, next: undefined };
    if (run.getTime() > nowMs) return { due, capped: false, next: run.getTime() };
    due.push(run.getTime());
    after = run;
  }
  return { due, capped: true, next: undefined };
}

/** The request_id of the job of `schedule`'s firing at `firingMs`: one job per firing. */
export function firingRequestId(schedule: string, firingMs: number): string {
  return `${FIRING_REQUEST_ID_PREFIX}${schedule}:${new Date(firingMs).toISOString()}`;
}
