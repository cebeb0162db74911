/**
 * The event log of the SQLite store: appending a publish's events with the
 * job's numbering and output counters, and reading them back for replay and
 * live tail (event_tail.ts).
 *
 * @module
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { JobEventSchema, type JobState } from "../../../gen/job/v1/job_pb.ts";
import { eventTimestampMs, lastSequenceOf } from "../../protocol/event_position.ts";
import { isFinished } from "../../protocol/job_state.ts";
import { JobNotFoundError } from "../errors.ts";
import type { EventLogSource } from "../event_tail.ts";
import type { Notifier } from "../notifier.ts";
import type { CappedEvents } from "../output_cap.ts";
import type { SqlRunner } from "./sql_runner.ts";

/**
 * Stores `capped` (a publish's events, numbered and capped) for the job of
 * row `jobRowId`, with its new highest sequence, base and output counters,
 * in one transaction.
 */
export function appendEvents(
  runner: SqlRunner,
  jobRowId: number,
  capped: CappedEvents,
  now: number,
): void {
  runner.transaction(() => {
    const insert = runner.sql(
      "INSERT INTO events (job, end_seq, timestamp_ms, payload) VALUES (?, ?, ?, ?)",
    );
    for (const event of capped.events) {
      insert.run(
        jobRowId,
        Number(lastSequenceOf(event)),
        eventTimestampMs(event, now),
        toBinary(JobEventSchema, event),
      );
    }
    runner.sql(
      "UPDATE jobs SET highest_sequence = ?, sequence_base = ?, output_bytes = ?, output_truncated = ? WHERE id = ?",
    ).run(
      Number(capped.highest),
      Number(capped.base),
      capped.storedBytes,
      capped.truncated ? 1 : 0,
      jobRowId,
    );
  });
}

/**
 * The tail's view of the store's event log; `jobWatchers` is notified with
 * a job's id whenever its log or state changes.
 */
export function sqliteEventSource(
  runner: SqlRunner,
  assertOpen: () => void,
  jobWatchers: Notifier<string>,
): EventLogSource {
  return {
    readEvents: async (jobId, fromSequence, limit) => {
      assertOpen();
      const rows = runner.sql(
        `SELECT payload FROM events WHERE job = (SELECT id FROM jobs WHERE job_id = ?)
           AND end_seq >= ? ORDER BY end_seq LIMIT ?`,
      ).all(jobId, Number(fromSequence), limit) as unknown as { payload: Uint8Array }[];
      return rows.map((r) => fromBinary(JobEventSchema, r.payload));
    },
    isFinished: async (jobId) => {
      assertOpen();
      const row = runner.sql("SELECT state FROM jobs WHERE job_id = ?").get(jobId) as
        | { state: JobState }
        | undefined;
      if (row === undefined) throw new JobNotFoundError(jobId);
      return isFinished(row.state);
    },
    waitForChange: (jobId, signal) => jobWatchers.wait(jobId, { signal }),
  };
}
