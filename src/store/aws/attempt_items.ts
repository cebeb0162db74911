/**
 * A job item's attempts (pure logic, no I/O): the ended ones, kept as one
 * encoded list (`attempts`: a Job message holding only them), and the one
 * the current lease opened (`open_started_at`, `open_worker`, with the
 * item's `attempt` and `sequence_base`), read back as Job.attempts.
 *
 * @module
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type JobAttempt, JobSchema, JobState } from "../../../gen/job/v1/job_pb.ts";
import { closedAttempt, type OpenAttempt, runningAttempt } from "../attempt_records.ts";
import { decideExpiry, type JobView } from "../lifecycle.ts";
import type { JobRecord } from "./job_item.ts";

/**
 * Job.attempts of a record as of `nowMs`: the ended ones, then the open one
 * (running, or ended as its expiry decides when its lease ran out: the next
 * lease writes that down, until then it is read so).
 */
export function attemptsAsOf(record: JobRecord, view: JobView, nowMs: number): JobAttempt[] {
  const attempts = attemptsOf(record);
  const open = openAttemptOf(record);
  if (open !== undefined) attempts.push(openAttemptEntry(view, open, knownHighest(record), nowMs));
  return attempts;
}

/** The ended attempts of a record, oldest first. */
export function attemptsOf(record: JobRecord): JobAttempt[] {
  return record.attempts === undefined ? [] : fromBinary(JobSchema, record.attempts).attempts;
}

/** The attribute value that stores `attempts` (see {@link attemptsOf}). */
export function attemptsAttribute(attempts: JobAttempt[]): AttributeValue {
  return { B: toBinary(JobSchema, create(JobSchema, { attempts })) };
}

/** The attempt the current lease opened, if one is open. */
export function openAttemptOf(record: JobRecord): OpenAttempt | undefined {
  // An item from before attempts were recorded has a lease but no start: count it from its update.
  const legacyRunning = record.state === JobState.RUNNING && record.openStartedAtMs === 0;
  if (record.openStartedAtMs === 0 && !legacyRunning) return undefined;
  return {
    number: record.attempt,
    worker: record.openWorker,
    startedAtMs: legacyRunning ? record.updatedAtMs : record.openStartedAtMs,
    sequenceBase: record.sequenceBase,
  };
}

/** The highest sequence the record knows of without reading the events table. */
function knownHighest(record: JobRecord): bigint {
  return record.reservedSequence > record.sequenceBase
    ? record.reservedSequence
    : record.sequenceBase;
}

/** The entry of the open attempt, as of `nowMs`. */
function openAttemptEntry(
  view: JobView,
  open: OpenAttempt,
  highest: bigint,
  nowMs: number,
): JobAttempt {
  const expiry = decideExpiry(view, nowMs);
  if (expiry.kind === "keep" || expiry.attemptEnd === undefined) {
    return runningAttempt(open, highest);
  }
  return closedAttempt(open, expiry.attemptEnd, highest, open.sequenceBase);
}
