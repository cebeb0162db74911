/**
 * What marks a schedule's job (pure, importing nothing, so `airunner list`
 * reads it without loading the cron parser): its metadata keys and the
 * prefix of its request_id. Clients may not set them themselves (see
 * request_validation.ts): a job that claims a schedule, or a firing's
 * request_id taken ahead of time, would stand in for the schedule's own.
 *
 * @module
 */

/** The metadata key that names the schedule a job was made by. */
export const SCHEDULE_METADATA_KEY = "schedule";
/** The metadata key that gives the firing (RFC 3339) a schedule's job was made for. */
export const FIRING_METADATA_KEY = "schedule_firing";
/** How every firing's request_id begins: `schedule:NAME:TIME`. */
export const FIRING_REQUEST_ID_PREFIX = "schedule:";
