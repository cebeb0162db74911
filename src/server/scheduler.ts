/**
 * The scheduler every server runs: it reads the store's schedules, and at
 * each firing enqueues the schedule's job (metadata schedule=NAME). When
 * it fires is decided by store/schedule_firings.ts (pure); this loop does
 * the I/O.
 *
 * - **One job per firing**, however many servers (orchestrators over the
 *   same tables) run a scheduler: the job's request_id is the firing's
 *   ({@link firingRequestId}), and the store makes one job per request_id.
 *   Recording the firing is a conditional write that only moves forward.
 * - **Changes elsewhere** (a schedule added through another server) are
 *   seen within {@link REFRESH_MS}: the loop reads every schedule again at
 *   least that often, and sleeps until the earliest firing otherwise.
 * - **Overlap** is judged on the job of the last firing that made one:
 *   "skip" makes no job while it has not ended, "cancel-previous" cancels
 *   it first, "allow" does not look. Two schedulers that read the previous
 *   job's state on either side of its end can judge a firing differently;
 *   the firing still makes at most one job.
 * - A schedule that fails (its queue gone, the store throttling) is logged
 *   and tried again at the next pass; the others are unaffected.
 *
 * @module
 */
import type { ExecutionConfig, Job, RetryPolicy, Schedule } from "../../gen/job/v1/job_pb.ts";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Clock, systemClock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { isFinished } from "../protocol/job_state.ts";
import type { CatchUpPolicy } from "../protocol/schedule_spec.ts";
import { FIRING_METADATA_KEY, SCHEDULE_METADATA_KEY } from "../protocol/schedule_keys.ts";
import { JobFinishedError, JobNotFoundError, ScheduleNotFoundError } from "../store/errors.ts";
import { nextMacrotask } from "../event_loop.ts";
import type { JobStore } from "../store/job_store.ts";
import { decideFirings, firingRequestId } from "../store/schedule_firings.ts";
import { count } from "../telemetry/metrics.ts";
import { withDefaultRetry } from "./job_defaults.ts";

/** Longest the scheduler goes without reading the schedules again. */
export const REFRESH_MS = 1_000;

/** What the scheduler needs. */
export interface SchedulerOptions {
  readonly store: JobStore;
  readonly logger: Logger;
  /** Given to every job a firing makes, as to every enqueued job. */
  readonly executionConfig: ExecutionConfig;
  readonly defaultRetry?: RetryPolicy;
  readonly clock?: Clock;
  /** Ends the loop. */
  readonly signal: AbortSignal;
}

/** Schedules handled between two yields to the event loop, so a pass never holds it long. */
const SCHEDULES_PER_SLICE = 50;

/**
 * What a pass learned of a schedule: its next firing, valid while the
 * schedule's record (`stamp`) is unchanged, so the next pass does not
 * compute it again (croner's search is the costly part of a pass).
 */
interface KnownNext {
  readonly stamp: string;
  readonly nextFiringMs: number | undefined;
}

/** Runs the scheduler until `options.signal` aborts; resolves then. */
export async function runScheduler(options: SchedulerOptions): Promise<void> {
  const { store, logger, signal } = options;
  const clock = options.clock ?? systemClock;
  const known = new Map<string, KnownNext>();
  while (!signal.aborted) {
    let wakeAt = clock.now() + REFRESH_MS;
    let schedules: Schedule[] = [];
    try {
      schedules = await store.schedules.list();
    } catch (error) {
      if (!signal.aborted) logger.warn({ err: error }, "scheduler could not read the schedules");
    }
    const seen = new Set<string>();
    for (const [i, schedule] of schedules.entries()) {
      if (signal.aborted) break;
      if (i > 0 && i % SCHEDULES_PER_SLICE === 0) await nextMacrotask();
      seen.add(schedule.name);
      if (schedule.paused) continue;
      const stamp = stampOf(schedule);
      const cached = known.get(schedule.name);
      const now = clock.now();
      if (cached?.stamp === stamp && (cached.nextFiringMs ?? Infinity) > now) {
        if (cached.nextFiringMs !== undefined) wakeAt = Math.min(wakeAt, cached.nextFiringMs);
        continue;
      }
      try {
        const next = await fireDue(schedule, now, options);
        if (next.stamp !== undefined) {
          known.set(schedule.name, { stamp: next.stamp, nextFiringMs: next.nextFiringMs });
        }
        if (next.nextFiringMs !== undefined) wakeAt = Math.min(wakeAt, next.nextFiringMs);
      } catch (error) {
        // One schedule's trouble (its queue gone, the store throttling) is
        // its own: it is tried again at the next pass, the others go on.
        known.delete(schedule.name);
        count("airunner.schedules.firings.total", 1, { outcome: "failed" });
        logger.warn(
          { err: error, schedule: schedule.name },
          "schedule firing failed; it is tried again at the next pass",
        );
        wakeAt = Math.min(wakeAt, now + REFRESH_MS);
      }
    }
    for (const name of known.keys()) if (!seen.has(name)) known.delete(name);
    await clock.sleep(Math.max(0, wakeAt - clock.now()), signal);
  }
}

/** What identifies a schedule's record: a change to its definition or its firing record. */
function stampOf(schedule: Schedule): string {
  const ms = (t: Schedule["updatedAt"]) => t === undefined ? 0 : timestampMs(t);
  return `${ms(schedule.updatedAt)}:${ms(schedule.lastFiringAt)}:${schedule.paused}`;
}

/**
 * Enqueues the jobs of `schedule`'s firings due at `nowMs` and records the
 * last one; returns when its next firing is due and the record that holds
 * for (undefined when it changed under this pass: the next pass reads it).
 */
async function fireDue(
  listed: Schedule,
  nowMs: number,
  options: SchedulerOptions,
): Promise<{ nextFiringMs: number | undefined; stamp: string | undefined }> {
  let schedule = listed;
  let decision = decisionFor(schedule, nowMs);
  if (decision.fire.length > 0 || decision.missed > 0) {
    // The list may be a while old: a firing acts on the schedule as it is
    // now (paused, replaced, deleted or already fired through another server).
    const fresh = await currentSchedule(options.store, schedule.name);
    if (fresh === undefined || fresh.paused) return { nextFiringMs: undefined, stamp: undefined };
    schedule = fresh;
    decision = decisionFor(schedule, nowMs);
  }
  const lastFiringMs = lastFiringOf(schedule, nowMs);
  if (decision.lastFiringMs <= lastFiringMs) {
    return { nextFiringMs: decision.nextFiringMs, stamp: stampOf(schedule) };
  }
  if (decision.missed > 0) {
    count("airunner.schedules.firings.total", decision.missed, { outcome: "missed" });
    options.logger.warn(
      { schedule: schedule.name, missed: decision.missed, catchUp: schedule.catchUp },
      "schedule firings missed while no scheduler ran",
    );
  }
  let lastJobId = schedule.lastJobId;
  for (const firingMs of decision.fire) {
    const job = await fireOnce(schedule, firingMs, lastJobId, options);
    if (job !== undefined) lastJobId = job.jobId;
  }
  await options.store.schedules.recordFiring(schedule.name, {
    lastFiringMs: decision.lastFiringMs,
    ...(lastJobId === schedule.lastJobId ? {} : { lastJobId }),
  });
  return { nextFiringMs: decision.nextFiringMs, stamp: undefined };
}

function lastFiringOf(schedule: Schedule, nowMs: number): number {
  return schedule.lastFiringAt === undefined ? nowMs : timestampMs(schedule.lastFiringAt);
}

function decisionFor(schedule: Schedule, nowMs: number) {
  return decideFirings(
    { cron: schedule.cron, timeZone: schedule.timeZone },
    { lastFiringMs: lastFiringOf(schedule, nowMs), catchUp: schedule.catchUp as CatchUpPolicy },
    nowMs,
  );
}

/** The schedule `name` as stored now; undefined once deleted. */
async function currentSchedule(store: JobStore, name: string): Promise<Schedule | undefined> {
  try {
    return await store.schedules.get(name);
  } catch (error) {
    if (error instanceof ScheduleNotFoundError) return undefined;
    throw error;
  }
}

/** The job of one firing, or undefined when the overlap policy skips it. */
async function fireOnce(
  schedule: Schedule,
  firingMs: number,
  lastJobId: string,
  options: SchedulerOptions,
): Promise<Job | undefined> {
  const { store, logger } = options;
  const at = new Date(firingMs).toISOString();
  const previous = schedule.overlap === "allow" || lastJobId === ""
    ? undefined
    : await unfinishedJob(store, lastJobId);
  if (previous !== undefined && schedule.overlap === "skip") {
    count("airunner.schedules.firings.total", 1, { outcome: "skipped" });
    logger.info(
      { schedule: schedule.name, firing: at, running: lastJobId },
      "schedule firing skipped: its previous job has not ended (overlap skip)",
    );
    return undefined;
  }
  const { job, created } = await store.enqueue(scheduledJob(schedule, options, firingMs));
  if (created) {
    count("airunner.schedules.firings.total", 1, { outcome: "enqueued" });
    logger.info({ schedule: schedule.name, firing: at, jobId: job.jobId }, "schedule fired");
  }
  // Cancelled only once its successor is enqueued, so a failing enqueue
  // never leaves the schedule with neither.
  if (previous !== undefined && previous.jobId !== job.jobId) {
    await store.cancel(lastJobId, `replaced by the firing of schedule ${schedule.name} at ${at}`)
      .catch((error) => {
        if (!(error instanceof JobFinishedError)) throw error;
      });
  }
  return job;
}

/** The job `jobId` while it has not ended; undefined once it has, or is gone. */
async function unfinishedJob(store: JobStore, jobId: string): Promise<Job | undefined> {
  try {
    const job = await store.getJob(jobId);
    return isFinished(job.state) ? undefined : job;
  } catch (error) {
    if (error instanceof JobNotFoundError) return undefined;
    throw error;
  }
}

/**
 * What enqueuing `schedule`'s job takes: its queue and parameters, with
 * metadata schedule=NAME (and schedule_firing=TIME for a firing's job,
 * whose request_id makes it the firing's only job), and the server's
 * defaults as any job gets them. Without `firingMs`: a run by hand.
 */
export function scheduledJob(
  schedule: Schedule,
  options: Pick<SchedulerOptions, "executionConfig" | "defaultRetry">,
  firingMs?: number,
) {
  const params = schedule.jobParams!;
  const firing = firingMs === undefined
    ? {}
    : { [FIRING_METADATA_KEY]: new Date(firingMs).toISOString() };
  return withDefaultRetry({
    requestId: firingMs === undefined ? "" : firingRequestId(schedule.name, firingMs),
    queue: schedule.queue,
    params: {
      ...params,
      metadata: { ...params.metadata, [SCHEDULE_METADATA_KEY]: schedule.name, ...firing },
    },
    executionConfig: options.executionConfig,
  }, options.defaultRetry);
}
