/**
 * What a schedule says and the checks of it (pure): a cron expression of
 * five fields (minute to weekday) or six (seconds first), an IANA time zone,
 * what to do when a firing meets the previous one still running, and
 * whether a firing missed while no server ran is made up at start.
 * Parsing is croner's (a maintained library with seconds and time zones);
 * only the field count is checked here, because croner also takes a
 * seventh (year) field, which airunner does not promise.
 *
 * @module
 */
import { Cron } from "croner";
import { InvalidArgumentError } from "./invalid_argument.ts";

/** What a firing does when the schedule's previous job is still running. */
export const OVERLAP_POLICIES = ["skip", "allow", "cancel-previous"] as const;
export type OverlapPolicy = typeof OVERLAP_POLICIES[number];

/** Whether a firing missed while no server ran is made up once at start. */
export const CATCH_UP_POLICIES = ["none", "latest"] as const;
export type CatchUpPolicy = typeof CATCH_UP_POLICIES[number];

/** When a schedule fires: a cron expression read in a time zone. */
export interface ScheduleTiming {
  readonly cron: string;
  /** An IANA zone such as Europe/Berlin; "" is UTC. */
  readonly timeZone: string;
}

/** Checks `cron`: five or six fields that croner can read. */
export function validateCronExpression(cron: string, field = "cron"): string {
  const fields = cron.trim().split(/\s+/).filter((f) => f !== "");
  if (fields.length !== 5 && fields.length !== 6) {
    throw new InvalidArgumentError(
      field,
      `"${cron}" has ${fields.length} fields; give 5 (minute hour day month weekday) or 6 (seconds first)`,
    );
  }
  let parsed: Cron;
  try {
    parsed = new Cron(cron, { paused: true, timezone: "UTC" });
  } catch (error) {
    throw new InvalidArgumentError(field, `"${cron}" is not a cron expression: ${reasonOf(error)}`);
  }
  // A date that never comes (February 30th) would cost every scheduler a
  // futile search of a few ms per pass; it is refused here, once.
  if (parsed.nextRun() === null) {
    throw new InvalidArgumentError(field, `"${cron}" never fires (no such date comes)`);
  }
  return cron;
}

/** Checks `timeZone`: an IANA time zone name this runtime knows, or "" for UTC. */
export function validateTimeZone(timeZone: string, field = "timezone"): string {
  if (timeZone === "") return timeZone;
  try {
    new Intl.DateTimeFormat("en", { timeZone });
  } catch {
    throw new InvalidArgumentError(
      field,
      `"${timeZone}" is not a time zone; give an IANA name such as Europe/Berlin or UTC`,
    );
  }
  return timeZone;
}

/** A croner instance for `timing` that never runs anything itself. */
export function cronOf(timing: ScheduleTiming): Cron {
  return new Cron(timing.cron, {
    paused: true,
    ...(timing.timeZone === "" ? { timezone: "UTC" } : { timezone: timing.timeZone }),
  });
}

function reasonOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/^CronPattern: /, "");
}
