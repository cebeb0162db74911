/**
 * The SQLite schema and its migrations. `PRAGMA user_version` holds the
 * schema version; each migration moves it up by one inside the same
 * transaction. A database written by a newer airunner is refused before
 * anything is written to it.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";

/** Why a data directory cannot be used. */
export class DataDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DataDirError";
  }
}

/**
 * Migrations, index = the version they lead from. Never edit one that has
 * shipped: add the next.
 *
 * Tables:
 * - jobs: one row per job. `ready_key` orders a queue's SCHEDULED jobs:
 *   the row id for new work, and RESCHEDULED_BASE + the time of expiry or
 *   hand-back for work scheduled again, which therefore goes first, oldest
 *   first. Protobuf blobs keep the parts no query looks into.
 * - events: one row per stored event, found by (job, end_seq), the last
 *   sequence the event occupies (a batch spans several).
 * - schedules: one row per cron schedule, by name: its definition encoded,
 *   and its state (schedule_records.ts) in columns a conditional write reads.
 * - job_metadata: the (key, value) pairs of each job's metadata that a
 *   listing can filter on, pointing at the job's row id.
 * - job_dependencies: for each job waiting on others, the ones it still
 *   waits on (by job_id), pointing at the waiting job's row id.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY,
    job_id              TEXT NOT NULL UNIQUE,
    queue               TEXT NOT NULL,
    state               INTEGER NOT NULL,
    request_id          TEXT,
    attempt             INTEGER NOT NULL DEFAULT 0,
    ready_key           INTEGER,
    lease_expires_at_ms INTEGER,
    sequence_base       INTEGER NOT NULL DEFAULT 0,
    highest_sequence    INTEGER NOT NULL DEFAULT 0,
    created_at_ms       INTEGER NOT NULL,
    updated_at_ms       INTEGER NOT NULL,
    finished_at_ms      INTEGER,
    params              BLOB NOT NULL,
    execution_config    BLOB NOT NULL,
    result              BLOB
  );
  CREATE UNIQUE INDEX jobs_by_request_id ON jobs (request_id) WHERE request_id IS NOT NULL;
  CREATE INDEX jobs_ready ON jobs (queue, ready_key) WHERE state = 1;
  CREATE INDEX jobs_leases ON jobs (lease_expires_at_ms) WHERE state = 2;
  CREATE INDEX jobs_by_queue_state ON jobs (queue, state, id);
  CREATE INDEX jobs_by_state ON jobs (state, id);
  CREATE INDEX jobs_finished ON jobs (finished_at_ms) WHERE finished_at_ms IS NOT NULL;
  CREATE TABLE events (
    job          INTEGER NOT NULL,
    end_seq      INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    payload      BLOB NOT NULL
  );
  CREATE UNIQUE INDEX events_by_job ON events (job, end_seq);
  `,
  // 1 -> 2: cancellation. A non-empty reason marks a cancel asked for.
  `ALTER TABLE jobs ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';`,
  // 2 -> 3: cheaper state changes. (queue, state, id) and (state, id) were
  // rewritten on every lease and completion, about 10 µs of a job's store
  // time. Listings now read:
  // - by queue: (queue, id), which a job never leaves;
  // - by failed (4) or cancelled (5) state: a partial index of those jobs,
  //   written only when a job ends that way;
  // - by scheduled (1) or running (2) state: the table newest first (these
  //   jobs are mostly recent), counted through jobs_ready and jobs_leases;
  // - by completed state, most of the table: the table newest first.
  `
  DROP INDEX jobs_by_queue_state;
  DROP INDEX jobs_by_state;
  CREATE INDEX jobs_by_queue ON jobs (queue, id);
  CREATE INDEX jobs_failed ON jobs (id) WHERE state = 4;
  CREATE INDEX jobs_cancelled ON jobs (id) WHERE state = 5;
  `,
  // 3 -> 4: the output cap (src/store/output_cap.ts). Output bytes stored
  // for the job over all attempts, and whether its marker is stored; jobs
  // from before start at 0, with the whole cap ahead of them.
  `
  ALTER TABLE jobs ADD COLUMN output_bytes INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE jobs ADD COLUMN output_truncated INTEGER NOT NULL DEFAULT 0;
  `,
  // 4 -> 5: retries and attempts (src/store/lifecycle.ts, retry_policy.ts).
  // - retry_policy: the job's RetryPolicy, encoded (NULL: none), apart from
  //   params so that a decision decodes no more than it reads.
  // - not_before_ms: the end of a retry's backoff. A job waiting it out is
  //   SCHEDULED with ready_key NULL, out of the queue's order; when it is
  //   due the store gives it ready_key RESCHEDULED_BASE + not_before_ms
  //   (jobs_delayed finds them; the expiry timer fires at the earliest).
  // - used_attempts, lost_attempts, failure_reason: see JobView.
  // - attempts: the ended attempts, a JobAttempt list encoded as the
  //   attempts field of a Job message, so a new entry is appended in SQL
  //   (CAST(attempts || entry AS BLOB): || alone would make it text).
  // - attempt_worker, attempt_started_ms, attempt_base: the open attempt.
  `
  ALTER TABLE jobs ADD COLUMN retry_policy BLOB;
  ALTER TABLE jobs ADD COLUMN not_before_ms INTEGER;
  ALTER TABLE jobs ADD COLUMN used_attempts INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE jobs ADD COLUMN lost_attempts INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE jobs ADD COLUMN failure_reason TEXT NOT NULL DEFAULT '';
  ALTER TABLE jobs ADD COLUMN attempts BLOB;
  ALTER TABLE jobs ADD COLUMN attempt_worker TEXT NOT NULL DEFAULT '';
  ALTER TABLE jobs ADD COLUMN attempt_started_ms INTEGER;
  ALTER TABLE jobs ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX jobs_delayed ON jobs (not_before_ms) WHERE state = 1 AND ready_key IS NULL;
  `,
  // 5 -> 6: priorities and delayed starts (JobParams.priority, delay_ms,
  // run_at). A queue serves its highest priority first, each in ready_key
  // order, so jobs_ready leads with the priority. A delayed start uses
  // not_before_ms as a retry's backoff does (ready_key NULL until due).
  `
  ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
  DROP INDEX jobs_ready;
  CREATE INDEX jobs_ready ON jobs (queue, priority DESC, ready_key) WHERE state = 1;
  `,
  // 6 -> 7: cron schedules (src/store/schedule_store.ts) and listing jobs by
  // metadata, which a schedule's firings are found by.
  // - schedules: `definition` is the Schedule message of definitionOf
  //   (schedule_records.ts); the state is in columns so that recording a
  //   firing is one conditional UPDATE (last_firing_ms < the firing's time).
  // - job_metadata: a job's metadata pairs, written with the job. Only pairs
  //   whose value is at most MAX_FILTERABLE_METADATA_LENGTH characters are
  //   indexed (protocol/limits.ts): a filter cannot ask for longer ones
  //   (validation refuses them), and a job's 256 values of 32 KiB would
  //   otherwise write 8 MiB of index. WITHOUT ROWID: the key is the whole
  //   row. job_metadata_by_job serves the deletion of a job's pairs.
  // Jobs from before version 7 have no pairs (no backfill): a metadata
  // filter does not find them. Schedules did not exist before 7, so the
  // jobs their firings made, the ones filtered for, all have theirs.
  // - owner: JobParams.owner, for `list --owner` (jobs from before 7 read
  //   as ''); unindexed: a listing by owner reads the table newest first.
  // - dependencies (JobParams.after, after_any; src/store/dependencies.ts):
  //   waiting_for is Job.waiting_for, a JSON array of job ids (NULL: none).
  //   A waiting job is SCHEDULED with ready_key NULL, so no dequeue sees it,
  //   and jobs_delayed leaves it out (its delayed start, if any, counts only
  //   once its dependencies allow). job_dependencies has a row (dependency,
  //   job) for each job a waiting job still waits on, exactly while it
  //   waits: the end of a job finds its dependents by the key's prefix and
  //   deletes their rows on it; a waiting job that ends itself deletes its
  //   own through its waiting_for, so no index by job is needed. Jobs from
  //   before 7 have no dependencies.
  `
  ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
  ALTER TABLE jobs ADD COLUMN waiting_for TEXT;
  DROP INDEX jobs_delayed;
  CREATE INDEX jobs_delayed ON jobs (not_before_ms)
    WHERE state = 1 AND ready_key IS NULL AND waiting_for IS NULL;
  CREATE TABLE job_dependencies (
    dependency TEXT NOT NULL,
    job        INTEGER NOT NULL,
    PRIMARY KEY (dependency, job)
  ) WITHOUT ROWID;
  CREATE TABLE schedules (
    name           TEXT PRIMARY KEY,
    definition     BLOB NOT NULL,
    paused         INTEGER NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    last_firing_ms INTEGER NOT NULL,
    last_job_id    TEXT NOT NULL DEFAULT ''
  );
  CREATE TABLE job_metadata (
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    job   INTEGER NOT NULL,
    PRIMARY KEY (key, value, job)
  ) WITHOUT ROWID;
  CREATE INDEX job_metadata_by_job ON job_metadata (job);
  `,
];

/** The schema version this airunner writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database to {@link SCHEMA_VERSION} (or to an older `target`,
 * which tests use to build a database as an older airunner left it).
 * @throws {DataDirError} when it was written by a newer airunner (it is left untouched).
 */
export function migrate(db: DatabaseSync, path: string, target = SCHEMA_VERSION): void {
  const row = db.prepare("PRAGMA user_version").get() as { user_version: number };
  const version = row.user_version;
  if (version > SCHEMA_VERSION) {
    throw new DataDirError(
      `${path} was written by a newer airunner (schema version ${version}; this one knows up to ${SCHEMA_VERSION}); upgrade airunner, or point --data-dir elsewhere`,
    );
  }
  for (let v = version; v < target; v++) {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(MIGRATIONS[v]!);
      db.exec(`PRAGMA user_version = ${v + 1}`);
      db.exec("COMMIT");
    } catch (error) {
      // SQLite may have ended the transaction itself (a full disk); a
      // ROLLBACK's own error must not hide the first one.
      try {
        if (db.isTransaction) db.exec("ROLLBACK");
      } catch {
        // The migration's error is the one to report.
      }
      throw error;
    }
  }
}
