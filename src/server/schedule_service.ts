/**
 * ScheduleService: cron schedules, translated to the store's ScheduleStore
 * calls, with who may do what: a schedule's owner is the subject of the
 * token that created it; a token of scope submit manages the schedules it
 * owns, admin manages every one (the scope check itself is the HTTP
 * edge's, see auth/scopes.ts). Reads are open to submit, as jobs are.
 * Secret values of a schedule's job are kept for its firings and hidden
 * from every reader.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type ExecutionConfig,
  type RetryPolicy,
  type Schedule,
  ScheduleSchema,
  type ScheduleService,
} from "../../gen/job/v1/job_pb.ts";
import { PermissionDeniedError } from "../auth/errors.ts";
import type { Caller } from "../auth/jwt.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import {
  validateCreateScheduleRequest,
  validateScheduleName,
} from "../protocol/schedule_validation.ts";
import { ScheduleNotFoundError, TooManySchedulesError } from "../store/errors.ts";
import { MAX_SCHEDULES_PER_OWNER } from "../protocol/limits.ts";
import type { JobStore } from "../store/job_store.ts";
import { nextFirings } from "../store/schedule_firings.ts";
import { CALLER } from "./authorization.ts";
import { redactJobForReaders, redactScheduleForReaders } from "./job_redaction.ts";
import { scheduledJob } from "./scheduler.ts";
import { SCHEDULE_METADATA_KEY } from "../protocol/schedule_keys.ts";

/** Firings GetSchedule shows. */
const NEXT_FIRINGS_OF_GET = 5;
/** Jobs GetSchedule shows. */
const RECENT_JOBS_OF_GET = 10;

/** What ScheduleService needs. */
export interface ScheduleServiceDeps {
  readonly store: JobStore;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Given to every job RunSchedule makes, as to every enqueued job. */
  readonly executionConfig: ExecutionConfig;
  readonly defaultRetry?: RetryPolicy;
}

/** Builds the ScheduleService implementation. */
export function createScheduleService(
  deps: ScheduleServiceDeps,
): ServiceImpl<typeof ScheduleService> {
  const { store, logger } = deps;
  const schedules = store.schedules;
  const forReaders = (schedule: Schedule, firings: number): Schedule => {
    const shown = create(ScheduleSchema, redactScheduleForReaders(schedule));
    if (!schedule.paused) {
      shown.nextFirings = nextFirings(schedule, deps.clock.now(), firings).map((ms) =>
        timestampFromMs(ms)
      );
    }
    return shown;
  };
  /** The schedule `name`, once the caller may manage it. */
  const managed = async (name: string, ctx: HandlerContext): Promise<Schedule> => {
    const schedule = await schedules.get(validateScheduleName(name));
    checkManages(ctx.values.get(CALLER), schedule);
    return schedule;
  };

  return {
    async createSchedule(req, ctx) {
      const definition = validateCreateScheduleRequest(req);
      const caller = ctx.values.get(CALLER);
      const existing = req.replace ? await existingSchedule(store, definition.name) : undefined;
      if (existing !== undefined) checkManages(caller, existing);
      if (existing === undefined) await checkOwnerLimit(store, caller, definition.name);
      // A replace keeps the owner; a new schedule belongs to its creator.
      definition.owner = existing?.owner ?? caller?.subject ?? "";
      const stored = await schedules.put(definition, { replace: req.replace });
      logger.info(
        { schedule: stored.name, cron: stored.cron, replaced: existing !== undefined },
        "schedule stored",
      );
      return { schedule: forReaders(stored, NEXT_FIRINGS_OF_GET) };
    },

    async getSchedule(req) {
      const schedule = await schedules.get(validateScheduleName(req.name));
      // On its queue: on AWS that reads the queue's index, not the whole table.
      const recent = await store.listJobs({
        page: 1,
        pageSize: RECENT_JOBS_OF_GET,
        queue: schedule.queue,
        metadata: { [SCHEDULE_METADATA_KEY]: schedule.name },
      });
      return {
        schedule: forReaders(schedule, NEXT_FIRINGS_OF_GET),
        recentJobs: recent.jobs.map(redactJobForReaders),
      };
    },

    async listSchedules() {
      return { schedules: (await schedules.list()).map((s) => forReaders(s, 1)) };
    },

    async pauseSchedule(req, ctx) {
      const { name } = await managed(req.name, ctx);
      const schedule = await schedules.setPaused(name, true);
      logger.info({ schedule: name }, "schedule paused");
      return { schedule: forReaders(schedule, NEXT_FIRINGS_OF_GET) };
    },

    async resumeSchedule(req, ctx) {
      const { name } = await managed(req.name, ctx);
      const schedule = await schedules.setPaused(name, false);
      logger.info({ schedule: name }, "schedule resumed");
      return { schedule: forReaders(schedule, NEXT_FIRINGS_OF_GET) };
    },

    async deleteSchedule(req, ctx) {
      const { name } = await managed(req.name, ctx);
      await schedules.delete(name);
      logger.info({ schedule: name }, "schedule deleted");
      return {};
    },

    async runSchedule(req, ctx) {
      const schedule = await managed(req.name, ctx);
      const { job } = await store.enqueue(scheduledJob(schedule, deps));
      logger.info({ schedule: schedule.name, jobId: job.jobId }, "schedule run by hand");
      return { job: redactJobForReaders(job) };
    },
  };
}

/** The schedule `name`, or undefined when there is none. */
async function existingSchedule(store: JobStore, name: string): Promise<Schedule | undefined> {
  try {
    return await store.schedules.get(name);
  } catch (error) {
    if (error instanceof ScheduleNotFoundError) return undefined;
    throw error;
  }
}

/**
 * Refuses a new schedule of a caller who has MAX_SCHEDULES_PER_OWNER
 * already, so one token cannot take the whole store's share (admin, and
 * every caller of a server without authentication, is not limited).
 */
async function checkOwnerLimit(
  store: JobStore,
  caller: Caller | undefined,
  name: string,
): Promise<void> {
  if (caller === undefined || caller.scopes.includes("admin")) return;
  const owned = (await store.schedules.list())
    .filter((s) => s.owner === caller.subject && s.name !== name).length;
  if (owned >= MAX_SCHEDULES_PER_OWNER) {
    throw new TooManySchedulesError(MAX_SCHEDULES_PER_OWNER, caller.subject);
  }
}

/**
 * Refuses a caller who may not manage `schedule`: only its owner and admin
 * may (any caller, on a server without authentication).
 */
function checkManages(caller: Caller | undefined, schedule: Schedule): void {
  if (caller === undefined || caller.scopes.includes("admin")) return;
  if (caller.subject === schedule.owner) return;
  throw new PermissionDeniedError(
    `schedule "${schedule.name}" belongs to "${schedule.owner}"; "${caller.subject}" may manage only its own schedules (admin manages all)`,
  );
}
