import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  ExecutionConfigSchema,
  JobParamsSchema,
  JobResultSchema,
  JobState,
  ScheduleSchema,
} from "../../gen/job/v1/job_pb.ts";
import { MAX_FILTERABLE_METADATA_LENGTH } from "../../src/protocol/limits.ts";
import { ScheduleNotFoundError, StoreFullError } from "../../src/store/errors.ts";
import type { JobStore, LeasedJob } from "../../src/store/job_store.ts";
import { SQL } from "../../src/store/sqlite/job_statements.ts";
import { migrate, SCHEMA_VERSION } from "../../src/store/sqlite/schema.ts";
import { listingFilter, SqliteJobStore } from "../../src/store/sqlite/sqlite_store.ts";
import { TaskTokenCodec } from "../../src/store/task_token.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { mountTmpfs, tmpfsUnavailable } from "../support/tmpfs.ts";
import { defineStoreConformance } from "./conformance.ts";

defineStoreConformance("sqlite", async (options) => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-sqlite-" });
  const clock = new FakeClock();
  const store = SqliteJobStore.open({
    path: `${dir}/airunner.db`,
    clock,
    tokenCodec: TaskTokenCodec.withRandomSecret(),
    ...options,
  });
  return {
    store,
    advance: (ms) => clock.advance(ms),
    now: () => clock.now(),
    close: async () => {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
});

// What the SQLite store adds to the schedule and metadata cases: schema 7
// over an older database, the pairs it indexes, and retention of them.

const config = create(ExecutionConfigSchema, {});

async function withStoreDir(fn: (path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "airunner-sqlite-" });
  try {
    await fn(`${dir}/airunner.db`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function openStore(path: string, clock: FakeClock, options: { retentionMs?: number } = {}) {
  return SqliteJobStore.open({
    path,
    clock,
    tokenCodec: new TaskTokenCodec(new Uint8Array(32).fill(7)),
    retentionMs: 0,
    ...options,
  });
}

async function enqueueWith(store: JobStore, metadata: Record<string, string>) {
  const { job } = await store.enqueue({
    requestId: "",
    queue: "default",
    params: create(JobParamsSchema, { command: "true", metadata }),
    executionConfig: config,
  });
  return job.jobId;
}

async function listedBy(store: JobStore, metadata?: Record<string, string>) {
  const page = await store.listJobs({ page: 1, pageSize: 100, ...(metadata ? { metadata } : {}) });
  return page.jobs.map((j) => j.jobId);
}

/** The job_metadata rows, read by a second connection. */
function metadataRows(path: string): { key: string; value: string; job: number }[] {
  const db = new DatabaseSync(path);
  try {
    return db.prepare("SELECT key, value, job FROM job_metadata ORDER BY job, key")
      .all() as unknown as { key: string; value: string; job: number }[];
  } finally {
    db.close();
  }
}

Deno.test("a version 6 database moves to version 7: its jobs stay, unfiltered; schedules work and outlive the store", async () => {
  await withStoreDir(async (path) => {
    const db = new DatabaseSync(path);
    migrate(db, path, 6);
    const oldJobId = "01890a5d-ac96-774b-bcce-b302099a8001";
    db.prepare(
      `INSERT INTO jobs (id, job_id, queue, state, created_at_ms, updated_at_ms, params, execution_config, ready_key)
       VALUES (1, ?, 'default', ?, 1, 1, ?, ?, 1)`,
    ).run(
      oldJobId,
      JobState.SCHEDULED,
      toBinary(JobParamsSchema, create(JobParamsSchema, { command: "true", metadata: { a: "1" } })),
      toBinary(ExecutionConfigSchema, config),
    );
    db.close();

    const clock = new FakeClock();
    const store = openStore(path, clock);
    try {
      assert.deepEqual(await listedBy(store), [oldJobId]);
      // No backfill: a job from before version 7 has no pairs to match.
      assert.deepEqual(await listedBy(store, { a: "1" }), []);
      const newJobId = await enqueueWith(store, { a: "1" });
      assert.deepEqual(await listedBy(store, { a: "1" }), [newJobId]);
      assert.deepEqual(await listedBy(store), [newJobId, oldJobId]);
      const created = await store.schedules.put(
        create(ScheduleSchema, { name: "nightly", cron: "0 3 * * *", queue: "default" }),
        { replace: false },
      );
      const firing = timestampMs(created.lastFiringAt!) + 60_000;
      assert.equal(
        await store.schedules.recordFiring("nightly", {
          lastFiringMs: firing,
          lastJobId: newJobId,
        }),
        true,
      );
      await store.schedules.setPaused("nightly", true);
    } finally {
      await store.close();
    }

    const reopened = openStore(path, clock);
    try {
      const kept = await reopened.schedules.get("nightly");
      assert.equal(kept.cron, "0 3 * * *");
      assert.equal(kept.paused, true);
      assert.equal(kept.lastJobId, (await listedBy(reopened, { a: "1" }))[0]);
      assert.deepEqual((await reopened.schedules.list()).map((s) => s.name), ["nightly"]);
    } finally {
      await reopened.close();
    }
    const after = new DatabaseSync(path);
    const version = after.prepare("PRAGMA user_version").get() as { user_version: number };
    after.close();
    assert.equal(version.user_version, SCHEMA_VERSION);
    assert.equal(SCHEMA_VERSION, 7);
  });
});

Deno.test(`only metadata values of at most ${MAX_FILTERABLE_METADATA_LENGTH} characters are indexed`, async () => {
  await withStoreDir(async (path) => {
    const store = openStore(path, new FakeClock());
    try {
      const longest = "x".repeat(MAX_FILTERABLE_METADATA_LENGTH);
      const jobId = await enqueueWith(store, {
        fits: longest,
        tooLong: "y".repeat(MAX_FILTERABLE_METADATA_LENGTH + 1),
        empty: "",
      });
      assert.deepEqual(metadataRows(path).map((r) => r.key), ["empty", "fits"]);
      assert.deepEqual(await listedBy(store, { fits: longest }), [jobId]);
      assert.deepEqual(await listedBy(store, { empty: "" }), [jobId]);
      await enqueueWith(store, {});
      assert.equal(metadataRows(path).length, 2, "a job without metadata writes no pairs");
    } finally {
      await store.close();
    }
  });
});

Deno.test("retention deletes a job's metadata pairs with it: a later job given its row id matches nothing", async () => {
  await withStoreDir(async (path) => {
    const clock = new FakeClock();
    const store = openStore(path, clock);
    let finished: string;
    let waiting: string;
    try {
      waiting = await enqueueWith(store, { schedule: "keep" });
      finished = await enqueueWith(store, { schedule: "gone", team: "ops" });
      // A cancel ends a job that no worker holds.
      await store.cancel(finished, "done with it");
      await clock.advance(10_000);
      assert.equal(await store.deleteFinishedBefore(clock.now()), 1);
      await assert.rejects(store.getJob(finished), /not found/);
      assert.deepEqual(metadataRows(path).map((r) => r.value), ["keep"]);
      assert.deepEqual(await listedBy(store, { schedule: "gone" }), []);
      assert.deepEqual(await listedBy(store, { schedule: "keep" }), [waiting]);
    } finally {
      await store.close();
    }
    // Reopened, the store numbers the next job one above the highest row
    // left: the deleted job's id, which no pair may still name.
    const reopened = openStore(path, clock);
    try {
      const next = await enqueueWith(reopened, {});
      assert.deepEqual(await listedBy(reopened, { schedule: "gone" }), []);
      assert.deepEqual(await listedBy(reopened, { team: "ops" }), []);
      assert.deepEqual(await listedBy(reopened), [next, waiting]);
    } finally {
      await reopened.close();
    }
  });
});

Deno.test("a listing by metadata finds its jobs through job_metadata's key, and a job's pairs are deleted through job_metadata_by_job", () => {
  const db = new DatabaseSync(":memory:");
  migrate(db, ":memory:");
  const plan = (sql: string, args: string[]) =>
    db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args).map((r) => String(r.detail)).join("; ");
  const { filter, args } = listingFilter({ metadata: { schedule: "nightly", team: "ops" } });
  assert.deepEqual(args, ["schedule", "nightly", "team", "ops"], "bound, never written in");
  for (
    const sql of [
      `SELECT COUNT(*) AS total FROM jobs ${filter}`,
      `SELECT * FROM jobs ${filter} ORDER BY id DESC LIMIT 10`,
    ]
  ) {
    const steps = plan(sql, args);
    assert.match(steps, /SEARCH job_metadata USING PRIMARY KEY \(key=\? AND value=\?\)/, steps);
    assert.doesNotMatch(steps, /SCAN (jobs|job_metadata)|TEMP B-TREE/, steps);
  }
  assert.match(
    plan("DELETE FROM job_metadata WHERE job = ?", ["1"]),
    /USING COVERING INDEX job_metadata_by_job/,
  );
  db.close();
});

// Dependencies (the contract's cases are in dependency_conformance.ts):
// what outlives a restart, and how a waiting job keeps out of the
// promotion of delayed starts.

async function enqueueAfter(
  store: JobStore,
  name: string,
  after: string[] = [],
  delayMs = 0n,
): Promise<string> {
  const { job } = await store.enqueue({
    requestId: "",
    queue: "default",
    params: create(JobParamsSchema, { command: "true", metadata: { name }, after, delayMs }),
    executionConfig: config,
  });
  return job.jobId;
}

/** The names of the jobs a short dequeue leases now. */
async function leasableNames(store: JobStore): Promise<{ names: string[]; leased: LeasedJob[] }> {
  const leased = await store.dequeue("default", {
    maxJobs: 10,
    visibilityTimeoutMs: 600_000,
    signal: AbortSignal.timeout(300),
  });
  return { names: leased.map((l) => l.job.jobParams!.metadata.name!).sort(), leased };
}

async function completeOk(store: JobStore, leased: LeasedJob): Promise<void> {
  await store.complete(
    leased.taskToken,
    create(JobResultSchema, { jobId: leased.job.jobId, success: true, exitCode: 0 }),
  );
}

/** The job_dependencies rows as (dependency, job row id), read by a second connection. */
function dependencyRows(path: string): [string, number][] {
  const db = new DatabaseSync(path);
  try {
    return db.prepare("SELECT dependency, job FROM job_dependencies ORDER BY job, dependency")
      .all().map((r) => [String(r.dependency), Number(r.job)]);
  } finally {
    db.close();
  }
}

Deno.test("a chain of dependencies outlives a restart: r -> a -> b, each runs once the one before completed", async () => {
  await withStoreDir(async (path) => {
    const clock = new FakeClock();
    let r: string, a: string, b: string;
    {
      await using store = openStore(path, clock);
      r = await enqueueAfter(store, "r");
      a = await enqueueAfter(store, "a", [r]);
      b = await enqueueAfter(store, "b", [a]);
      assert.deepEqual(dependencyRows(path), [[r, 2], [a, 3]]);
    }
    {
      await using store = openStore(path, clock);
      assert.deepEqual((await store.getJob(a)).waitingFor, [r]);
      assert.deepEqual((await store.getJob(b)).waitingFor, [a]);
      const first = await leasableNames(store);
      assert.deepEqual(first.names, ["r"], "a and b wait after the restart too");
      await completeOk(store, first.leased[0]!);
      const second = await leasableNames(store);
      assert.deepEqual(second.names, ["a"]);
      assert.deepEqual(dependencyRows(path), [[a, 3]]);
      // a is running when the server goes down.
      assert.equal(second.leased.length, 1);
      const token = second.leased[0]!;
      await store.close();
      await using reopened = openStore(path, clock);
      assert.deepEqual((await reopened.getJob(b)).waitingFor, [a]);
      assert.deepEqual((await leasableNames(reopened)).names, [], "b still waits on a");
      await completeOk(reopened, token);
      const got = await reopened.getJob(b);
      assert.deepEqual(got.waitingFor, []);
      assert.equal(got.state, JobState.SCHEDULED);
      assert.deepEqual((await leasableNames(reopened)).names, ["b"]);
      assert.deepEqual(dependencyRows(path), [], "no rows outlive the wait");
    }
  });
});

Deno.test("a waiting job keeps out of the delayed-start promotion: without a delay it is never promoted, with one only once its dependencies allow", async () => {
  await withStoreDir(async (path) => {
    const clock = new FakeClock();
    await using store = openStore(path, clock);
    const r = await enqueueAfter(store, "r");
    await enqueueAfter(store, "plain", [r]);
    await enqueueAfter(store, "short", [r], 1_000n);
    const long = await enqueueAfter(store, "long", [r], 60_000n);
    const first = await leasableNames(store);
    assert.deepEqual(first.names, ["r"]);
    await clock.advance(5_000);
    const db = new DatabaseSync(path);
    try {
      const due = db.prepare(SQL.earliestDue).get() as { next: number | null };
      assert.equal(due.next, null, "no expiry timer is armed for a waiting job's delay");
    } finally {
      db.close();
    }
    // A read sweeps what is due (promoteDue) whether or not the timer fired.
    assert.deepEqual((await store.getJob(long)).waitingFor, [r]);
    assert.deepEqual((await leasableNames(store)).names, [], "short's delay passed, but r runs");
    await completeOk(store, first.leased[0]!);
    assert.deepEqual((await leasableNames(store)).names, ["plain", "short"]);
    assert.equal((await store.getJob(long)).state, JobState.SCHEDULED);
    assert.deepEqual((await leasableNames(store)).names, [], "long's delay is still ahead");
    await clock.advance(60_000);
    assert.deepEqual((await leasableNames(store)).names, ["long"]);
  });
});

Deno.test("a waiting job cancelled, and retention of a finished one, leave no job_dependencies rows", async () => {
  await withStoreDir(async (path) => {
    const clock = new FakeClock();
    await using store = openStore(path, clock);
    const r = await enqueueAfter(store, "r");
    const a = await enqueueAfter(store, "a", [r]);
    const b = await enqueueAfter(store, "b", [a]);
    await store.cancel(a, "not needed");
    assert.equal((await store.getJob(b)).cancelReason, `dependency ${a} was cancelled`);
    assert.deepEqual(dependencyRows(path), []);
    await clock.advance(10_000);
    assert.equal(await store.deleteFinishedBefore(clock.now()), 2);
    // A job after a deleted one cannot be enqueued: it no longer exists.
    await assert.rejects(enqueueAfter(store, "late", [a]), /does not exist/);
    assert.equal((await store.getJob(r)).state, JobState.SCHEDULED);
  });
});

Deno.test("the end of a job finds its dependents, and a waiting job its own rows, by job_dependencies' key", () => {
  const db = new DatabaseSync(":memory:");
  migrate(db, ":memory:");
  const plan = (sql: string, ...args: (string | number)[]) =>
    db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args).map((r) => String(r.detail)).join("; ");
  assert.match(
    plan("DELETE FROM job_dependencies WHERE dependency = ? RETURNING job", "x"),
    /SEARCH job_dependencies USING PRIMARY KEY \(dependency=\?\)/,
  );
  assert.match(
    plan(
      "DELETE FROM job_dependencies WHERE job = ? AND dependency IN (SELECT value FROM json_each(?))",
      1,
      '["x"]',
    ),
    /SEARCH job_dependencies USING PRIMARY KEY \(dependency=\? AND job=\?\)/,
  );
  assert.match(plan(SQL.promoteDue, 1), /USING INDEX jobs_delayed/);
  db.close();
});

const noTmpfs = await tmpfsUnavailable();

Deno.test({
  name:
    "a full disk: schedule writes fail with StoreFullError, reads go on, freeing space lets them through",
  ignore: noTmpfs !== undefined,
  async fn() {
    await using disk = await mountTmpfs(2 * 1024 * 1024);
    const path = join(disk.dir, "airunner.db");
    const background: unknown[] = [];
    const store = SqliteJobStore.open({
      path,
      clock: new FakeClock(),
      tokenCodec: new TaskTokenCodec(new Uint8Array(32).fill(7)),
      retentionMs: 0,
      onBackgroundError: (error) => background.push(error),
    });
    try {
      const padded = (name: string) =>
        create(ScheduleSchema, {
          name,
          cron: "* * * * *",
          queue: "default",
          jobParams: create(JobParamsSchema, {
            command: "true",
            environment: { PAD: "x".repeat(16 * 1024) },
          }),
        });
      await store.schedules.put(padded("first"), { replace: false });
      await disk.fill(128 * 1024);
      let refusal: unknown;
      let accepted = 0;
      for (let i = 0; i < 200 && refusal === undefined; i++) {
        try {
          await store.schedules.put(padded(`s${i}`), { replace: false });
          accepted++;
        } catch (error) {
          refusal = error;
        }
      }
      assert.ok(refusal instanceof StoreFullError, `refused with ${refusal} after ${accepted}`);
      await assert.rejects(
        store.schedules.put(padded("again"), { replace: false }),
        StoreFullError,
      );
      assert.equal((await store.schedules.get("first")).name, "first");
      assert.equal((await store.schedules.list()).length, 1 + accepted);
      await assert.rejects(store.schedules.get("again"), ScheduleNotFoundError);

      await disk.free();
      await store.schedules.put(padded("after"), { replace: false });
      assert.equal(await store.schedules.recordFiring("after", { lastFiringMs: 2 ** 50 }), true);
      assert.equal((await store.schedules.list()).length, 2 + accepted);
      assert.deepEqual(background, [], "no ROLLBACK failed, nothing unexpected");
    } finally {
      await store.close();
    }
  },
});
