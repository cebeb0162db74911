/**
 * The checks of ScheduleService requests (pure), with the contract's
 * defaults: overlap "skip", catch-up "none", UTC. A schedule's job is
 * checked as an EnqueueJob request's is, so a schedule that stores can
 * always make its jobs; it may not set a start time of its own (each
 * firing is its start).
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type CreateScheduleRequest,
  EnqueueJobRequestSchema,
  type Schedule,
  ScheduleSchema,
} from "../../gen/job/v1/job_pb.ts";
import { InvalidArgumentError } from "./invalid_argument.ts";
import { MAX_SCHEDULE_BYTES, MAX_SCHEDULE_NAME_LENGTH } from "./limits.ts";
import { validateEnqueueRequest, withinItem } from "./request_validation.ts";
import {
  CATCH_UP_POLICIES,
  OVERLAP_POLICIES,
  validateCronExpression,
  validateTimeZone,
} from "./schedule_spec.ts";

const SCHEDULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Checks a schedule name: 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit. */
export function validateScheduleName(name: string, field = "name"): string {
  if (name === "") throw new InvalidArgumentError(field, "is required");
  if (name.length > MAX_SCHEDULE_NAME_LENGTH) {
    throw new InvalidArgumentError(
      field,
      `is ${name.length} characters, more than the limit of ${MAX_SCHEDULE_NAME_LENGTH}`,
    );
  }
  if (!SCHEDULE_NAME.test(name)) {
    throw new InvalidArgumentError(
      field,
      `"${name}" may contain only letters, digits, '.', '-' and '_', and must start with a letter or digit`,
    );
  }
  return name;
}

/** Checks that `value` is one of `choices`, "" giving the first. */
function choiceOf<T extends string>(field: string, value: string, choices: readonly T[]): T {
  if (value === "") return choices[0]!;
  if (!(choices as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(field, `is "${value}"; give one of ${choices.join(", ")}`);
  }
  return value as T;
}

/**
 * The schedule a CreateSchedule request asks for, checked, with defaults
 * filled in and only its definition kept (owner is the server's to set).
 */
export function validateCreateScheduleRequest(req: CreateScheduleRequest): Schedule {
  const s = req.schedule;
  if (s === undefined) throw new InvalidArgumentError("schedule", "is required");
  const name = validateScheduleName(s.name, "schedule.name");
  const cron = validateCronExpression(s.cron.trim(), "schedule.cron");
  const timeZone = validateTimeZone(s.timeZone, "schedule.time_zone");
  const overlap = choiceOf("schedule.overlap", s.overlap, OVERLAP_POLICIES);
  // "none" first: the default skips a missed firing.
  const catchUp = choiceOf("schedule.catch_up", s.catchUp, CATCH_UP_POLICIES);
  const job = withinItem("schedule", () =>
    validateEnqueueRequest(
      create(EnqueueJobRequestSchema, {
        queue: s.queue,
        ...(s.jobParams === undefined ? {} : { jobParams: s.jobParams }),
      }),
    ));
  if (job.params.after.length > 0 || job.params.afterAny.length > 0) {
    throw new InvalidArgumentError(
      "schedule.job_params",
      "sets after or after_any; every firing would wait for the same jobs, so leave both unset",
    );
  }
  if (job.params.delayMs !== 0n || job.params.runAt !== undefined) {
    throw new InvalidArgumentError(
      "schedule.job_params",
      "sets delay_ms or run_at; a schedule's job starts at each firing, so leave both unset",
    );
  }
  const schedule = create(ScheduleSchema, {
    name,
    cron,
    timeZone,
    overlap,
    catchUp,
    queue: job.queue,
    jobParams: job.params,
    paused: s.paused,
  });
  const bytes = toBinary(ScheduleSchema, schedule).byteLength;
  if (bytes > MAX_SCHEDULE_BYTES) {
    throw new InvalidArgumentError(
      "schedule",
      `is ${bytes} bytes encoded, more than the limit of ${MAX_SCHEDULE_BYTES}`,
    );
  }
  return schedule;
}
