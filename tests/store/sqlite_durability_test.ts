/**
 * What the SQLite store adds to the contract: data that outlives the store,
 * schema versions, the data-dir lock, the persisted token secret, retention
 * and long event logs.
 */
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { DatabaseSync } from "node:sqlite";
import {
  ExecutionConfigSchema,
  JobParamsSchema,
  JobResultSchema,
  JobState,
} from "../../gen/job/v1/job_pb.ts";
import { defaultExecutionConfig } from "../../src/server/execution_config.ts";
import { LeaseLostError } from "../../src/store/errors.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { loadTokenSecret, lockDataDir, openDataDirStore } from "../../src/store/data_dir.ts";
import { DataDirError, migrate, SCHEMA_VERSION } from "../../src/store/sqlite/schema.ts";
import { listingFilter, SqliteJobStore } from "../../src/store/sqlite/sqlite_store.ts";
import { SQL } from "../../src/store/sqlite/job_statements.ts";
import { TaskTokenCodec } from "../../src/store/task_token.ts";
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import type { JobStore } from "../../src/store/job_store.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { storedEvents } from "../support/stored_events.ts";

const noEnv = () => undefined;

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "airunner-datadir-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function enqueue(store: JobStore, command = "true") {
  const { job } = await store.enqueue({
    requestId: "",
    queue: "default",
    params: create(JobParamsSchema, { command }),
    executionConfig: defaultExecutionConfig(),
  });
  return job.jobId;
}

async function dequeue(store: JobStore, visibilityTimeoutMs = 30_000) {
  const [leased] = await store.dequeue("default", {
    maxJobs: 1,
    visibilityTimeoutMs,
    signal: AbortSignal.timeout(1_000),
  });
  return leased!;
}

function startEvent(sequence: number): JobEvent {
  return makeEvent(BigInt(sequence), Date.now(), {
    case: "processStart",
    value: { $typeName: "job.v1.ProcessStartEvent", pid: 1 },
  });
}

Deno.test("jobs, events and leases outlive the store; tokens keep working after a reopen", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const first = await openDataDirStore(dir, { clock, env: noEnv });
    const queued = await enqueue(first);
    const running = await enqueue(first);
    const expiring = await enqueue(first);
    const stillQueued = await enqueue(first);
    const done = await dequeue(first);
    assert.equal(done.job.jobId, queued);
    await first.complete(done.taskToken, create(JobResultSchema, { jobId: queued, success: true }));
    const held = await dequeue(first, 60_000); // `running`, kept across the restart
    assert.equal(held.job.jobId, running);
    const lapsing = await dequeue(first, 1_000); // `expiring`: its lease runs out while down
    assert.equal(lapsing.job.jobId, expiring);
    await first.close();

    await clock.advance(5_000);
    const second = await openDataDirStore(dir, { clock, env: noEnv });
    // The worker that held `running` carries on with its token.
    await second.updateLease(held.taskToken, "default", 60_000);
    await second.publishEvents(held.taskToken, [startEvent(1)]);
    await second.complete(
      held.taskToken,
      create(JobResultSchema, { jobId: running, success: true }),
    );
    assert.equal((await second.getJob(running)).state, JobState.COMPLETED);
    // The lease that ran out while the server was down is redelivered.
    await assert.rejects(
      second.complete(
        lapsing.taskToken,
        create(JobResultSchema, { jobId: expiring, success: true }),
      ),
      LeaseLostError,
    );
    const again = await dequeue(second);
    assert.equal(again.job.jobId, expiring, "redelivered before newer work");
    assert.equal(again.job.attempt, 2);
    assert.equal((await dequeue(second)).job.jobId, stillQueued, "queued work stayed queued");
    assert.equal((await second.getJob(queued)).state, JobState.COMPLETED);
    assert.deepEqual((await storedEvents(second, running)).map((e) => e.sequence), [1n]);
    await second.close();
  });
});

Deno.test("a database written by a newer airunner is refused and left untouched", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/airunner.db`;
    const db = new DatabaseSync(path);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}; CREATE TABLE future (x)`);
    db.close();
    const before = await Deno.readFile(path);
    assert.throws(
      () => SqliteJobStore.open({ path, tokenCodec: testCodec() }),
      (error: unknown) =>
        error instanceof DataDirError &&
        error.message.includes(`schema version ${SCHEMA_VERSION + 1}`) &&
        error.message.includes("newer airunner"),
    );
    assert.deepEqual(await Deno.readFile(path), before);
  });
});

Deno.test("a version 2 database moves to version 3 with its jobs, listed by queue and state", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/airunner.db`;
    const db = new DatabaseSync(path);
    migrate(db, path, 2);
    const params = toBinary(JobParamsSchema, create(JobParamsSchema, { command: "true" }));
    const config = toBinary(ExecutionConfigSchema, defaultExecutionConfig());
    const insert = db.prepare(
      `INSERT INTO jobs (id, job_id, queue, state, created_at_ms, updated_at_ms, params, execution_config, ready_key)
       VALUES (?, ?, ?, ?, 1, 1, ?, ?, ?)`,
    );
    const rows: [string, JobState][] = [
      ["a", JobState.COMPLETED],
      ["a", JobState.FAILED],
      ["b", JobState.FAILED],
      ["b", JobState.CANCELLED],
      ["a", JobState.SCHEDULED],
    ];
    rows.forEach(([queue, state], i) => {
      const id = i + 1;
      const jobId = `01890a5d-ac96-774b-bcce-b302099a80${String(id).padStart(2, "0")}`;
      insert.run(id, jobId, queue, state, params, config, state === JobState.SCHEDULED ? id : null);
    });
    db.close();

    const store = SqliteJobStore.open({ path, tokenCodec: testCodec(), retentionMs: 0 });
    const ids = async (queue: string | undefined, state: JobState | undefined) =>
      (await store.listJobs({
        ...(queue === undefined ? {} : { queue }),
        ...(state === undefined ? {} : { state }),
        page: 1,
        pageSize: 10,
      })).jobs.map((j) => Number(j.jobId.slice(-2)));
    assert.deepEqual(await ids(undefined, undefined), [5, 4, 3, 2, 1]);
    assert.deepEqual(await ids("a", undefined), [5, 2, 1]);
    assert.deepEqual(await ids(undefined, JobState.FAILED), [3, 2]);
    assert.deepEqual(await ids("b", JobState.FAILED), [3]);
    assert.deepEqual(await ids(undefined, JobState.CANCELLED), [4]);
    assert.deepEqual(await ids("a", JobState.SCHEDULED), [5]);
    // The scheduled job is still in its queue's order: a dequeue takes it.
    const [leased] = await store.dequeue("a", {
      maxJobs: 1,
      visibilityTimeoutMs: 30_000,
      signal: AbortSignal.timeout(1_000),
    });
    assert.equal(Number(leased?.job?.jobId.slice(-2)), 5);
    await store.close();

    const after = new DatabaseSync(path);
    const version = after.prepare("PRAGMA user_version").get() as { user_version: number };
    const indexes = after.prepare("SELECT name FROM sqlite_master WHERE type = 'index'").all()
      .map((r) => r.name);
    after.close();
    assert.equal(version.user_version, SCHEMA_VERSION);
    assert.ok(indexes.includes("jobs_by_queue") && indexes.includes("jobs_failed"));
    assert.ok(!indexes.includes("jobs_by_state") && !indexes.includes("jobs_by_queue_state"));
  });
});

Deno.test("listings by queue, failed or cancelled read an index, not the whole table", () => {
  const db = new DatabaseSync(":memory:");
  migrate(db, ":memory:");
  const plan = (query: { queue?: string; state?: JobState }) => {
    const { filter, args } = listingFilter(query);
    return [
      `SELECT COUNT(*) AS total FROM jobs ${filter}`,
      `SELECT * FROM jobs ${filter} ORDER BY id DESC LIMIT 10`,
    ].map((sql) =>
      db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args).map((r) => String(r.detail)).join("; ")
    );
  };
  const states = Object.values(JobState).filter((v): v is JobState => typeof v === "number");
  for (const state of [undefined, ...states]) {
    for (const step of plan({ queue: "q", ...(state === undefined ? {} : { state }) })) {
      assert.match(
        step,
        /USING (COVERING )?INDEX (jobs_by_queue|jobs_ready)/,
        `queue, ${state}: ${step}`,
      );
    }
  }
  assert.deepEqual(
    plan({ state: JobState.FAILED }).map((step) => /INDEX jobs_failed/.test(step)),
    [true, true],
  );
  assert.deepEqual(
    plan({ state: JobState.CANCELLED }).map((step) => /INDEX jobs_cancelled/.test(step)),
    [true, true],
  );
  db.close();
});

Deno.test("a second server on the same data dir is refused while the first runs", async () => {
  await withDir(async (dir) => {
    const first = await openDataDirStore(dir, { env: noEnv });
    await assert.rejects(
      openDataDirStore(dir, { env: noEnv }),
      (error: unknown) =>
        error instanceof DataDirError && /is in use by another airunner server/.test(error.message),
    );
    await first.close();
    const lock = lockDataDir(dir); // free again once the first closed
    lock.release();
  });
});

Deno.test("the token secret is created once with mode 0600, or taken from the environment", async () => {
  await withDir(async (dir) => {
    const secret = await loadTokenSecret(dir, noEnv);
    assert.equal(secret.byteLength, 32);
    assert.deepEqual(await loadTokenSecret(dir, noEnv), secret);
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(`${dir}/token-secret`)).mode! & 0o777, 0o600);
    }
    const fromEnv = await loadTokenSecret(
      dir,
      (name) => name === "AIRUNNER_TOKEN_SIGNING_SECRET" ? "x".repeat(40) : undefined,
    );
    assert.equal(new TextDecoder().decode(fromEnv), "x".repeat(40));
    await assert.rejects(
      loadTokenSecret(dir, () => "too short"),
      /AIRUNNER_TOKEN_SIGNING_SECRET is 9 bytes; it must be at least 32/,
    );
  });
});

Deno.test("retention deletes finished jobs older than the limit, with their events", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const store = SqliteJobStore.open({
      path: `${dir}/airunner.db`,
      clock,
      tokenCodec: testCodec(),
      retentionMs: 7 * 24 * 3600_000,
      retentionIntervalMs: 3600_000,
    });
    const old = await enqueue(store);
    const leased = await dequeue(store);
    await store.publishEvents(leased.taskToken, [startEvent(1)]);
    await store.complete(leased.taskToken, create(JobResultSchema, { jobId: old, success: true }));
    const waiting = await enqueue(store); // never finishes: kept
    await clock.advance(6 * 24 * 3600_000);
    const recent = await enqueue(store);
    const recentLease = await dequeue(store);
    assert.equal(recentLease.job.jobId, waiting);
    await store.complete(
      recentLease.taskToken,
      create(JobResultSchema, { jobId: waiting, success: false, exitCode: 1 }),
    );
    await clock.advance(2 * 24 * 3600_000); // `old` is now 8 days finished; `waiting` 2 days
    await new Promise((resolve) => setTimeout(resolve, 50));
    await assert.rejects(store.getJob(old), /not found/);
    assert.equal((await store.getJob(waiting)).state, JobState.FAILED);
    assert.equal((await store.getJob(recent)).state, JobState.SCHEDULED);
    await store.close();
  });
});

Deno.test("a job with 100,000 events replays them all, in order", async () => {
  await withDir(async (dir) => {
    const store = SqliteJobStore.open({ path: `${dir}/airunner.db`, tokenCodec: testCodec() });
    const jobId = await enqueue(store);
    const leased = await dequeue(store);
    for (let first = 1; first <= 100_000; first += 1000) {
      await store.publishEvents(
        leased.taskToken,
        Array.from({ length: 1000 }, (_, i) => startEvent(first + i)),
      );
    }
    await store.complete(leased.taskToken, create(JobResultSchema, { jobId, success: true }));
    let count = 0;
    let last = 0n;
    for await (
      const e of store.streamEvents(jobId, {
        fromSequence: 0n,
        fromTimestampMs: 0,
        eventTypes: new Set(),
        signal: AbortSignal.timeout(60_000),
      })
    ) {
      assert.equal(e.sequence, last + 1n);
      last = e.sequence;
      count++;
    }
    assert.equal(count, 100_000);
    await store.close();
  });
});

function testCodec() {
  return new TaskTokenCodec(new Uint8Array(32).fill(7));
}

Deno.test("a restart during a retry's backoff loses nothing: the retry comes when due", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/airunner.db`;
    const clock = new FakeClock();
    const tokenCodec = TaskTokenCodec.withRandomSecret();
    const first = SqliteJobStore.open({ path, clock, tokenCodec });
    const { job } = await first.enqueue({
      requestId: "",
      queue: "default",
      params: create(JobParamsSchema, {
        command: "flaky",
        retry: { maxRetries: 2, minDelayMs: 60_000n, maxDelayMs: 60_000n },
      }),
      executionConfig: defaultExecutionConfig(),
    });
    const leased = await dequeue(first);
    await first.complete(
      leased.taskToken,
      create(JobResultSchema, { jobId: job.jobId, success: false, exitCode: 1 }),
    );
    await first.close();

    const second = SqliteJobStore.open({ path, clock, tokenCodec });
    try {
      const waiting = await second.getJob(job.jobId);
      assert.equal(waiting.state, JobState.SCHEDULED);
      assert.equal(waiting.notBefore?.seconds, BigInt(Math.floor((clock.now() + 60_000) / 1000)));
      assert.deepEqual(waiting.attempts.map((a) => a.outcome), ["failed"]);
      const woken = second.dequeue("default", {
        maxJobs: 1,
        visibilityTimeoutMs: 30_000,
        signal: AbortSignal.timeout(5_000),
      });
      await clock.advance(59_000);
      await clock.advance(1_000);
      const [retried] = await woken;
      assert.equal(retried?.job.jobId, job.jobId, "the reopened store's timer wakes the dequeue");
      assert.equal(retried?.job.attempt, 2);
    } finally {
      await second.close();
    }
  });
});

Deno.test("a retry's reschedule and its notice commit together: a refused notice leaves the job as it was", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/airunner.db`;
    const store = SqliteJobStore.open({
      path,
      clock: new FakeClock(),
      tokenCodec: TaskTokenCodec.withRandomSecret(),
    });
    try {
      const { job } = await store.enqueue({
        requestId: "",
        queue: "default",
        params: create(JobParamsSchema, {
          command: "flaky",
          retry: { maxRetries: 2, minDelayMs: 60_000n, maxDelayMs: 60_000n },
        }),
        executionConfig: defaultExecutionConfig(),
      });
      const leased = await dequeue(store);
      await store.publishEvents(leased.taskToken, [startEvent(1)]);
      // Another connection makes every event insert fail, as a full disk would the notice's.
      const other = new DatabaseSync(path);
      other.exec(
        "CREATE TRIGGER refuse_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'refused'); END",
      );
      const failed = create(JobResultSchema, { jobId: job.jobId, success: false, exitCode: 1 });
      await assert.rejects(store.complete(leased.taskToken, failed), /refused/);
      const unchanged = await store.getJob(job.jobId);
      assert.equal(unchanged.state, JobState.RUNNING, "no half-written reschedule");
      assert.deepEqual(
        unchanged.attempts.map((a) => a.outcome),
        [""],
        "no ended attempt on record",
      );
      other.exec("DROP TRIGGER refuse_events");
      other.close();
      // The worker's retried completion now goes through whole, and the next attempt's output lands.
      assert.equal(await store.complete(leased.taskToken, failed), true);
      const waiting = await store.getJob(job.jobId);
      assert.equal(waiting.state, JobState.SCHEDULED);
      await store.cancel(job.jobId, "enough"); // ends the log, for reading it whole
      const events = await storedEvents(store, job.jobId);
      assert.deepEqual(events.slice(0, 2).map((e) => [e.sequence, e.eventData.case]), [
        [1n, "processStart"],
        [2n, "attemptEnd"],
      ]);
    } finally {
      await store.close();
    }
  });
});

Deno.test("the next job to lease is found through jobs_ready, priority and order both, with no sort", () => {
  const db = new DatabaseSync(":memory:");
  migrate(db, ":memory:");
  const plan = db.prepare(`EXPLAIN QUERY PLAN ${SQL.readyCandidates}`).all("q", 10)
    .map((r) => String(r.detail)).join("; ");
  db.close();
  assert.match(plan, /USING INDEX jobs_ready/);
  assert.doesNotMatch(plan, /TEMP B-TREE/, "no sort step: the index gives the order");
});

Deno.test("a restart during a delayed start loses nothing: the job starts when due", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/airunner.db`;
    const clock = new FakeClock();
    const tokenCodec = TaskTokenCodec.withRandomSecret();
    const first = SqliteJobStore.open({ path, clock, tokenCodec });
    const { job } = await first.enqueue({
      requestId: "",
      queue: "default",
      params: create(JobParamsSchema, { command: "nightly", delayMs: 60_000n, priority: 4 }),
      executionConfig: defaultExecutionConfig(),
    });
    await first.close();

    const second = SqliteJobStore.open({ path, clock, tokenCodec });
    try {
      const waiting = await second.getJob(job.jobId);
      assert.equal(waiting.state, JobState.SCHEDULED);
      assert.equal(waiting.attempt, 0);
      assert.equal(waiting.notBefore?.seconds, BigInt(Math.floor((clock.now() + 60_000) / 1000)));
      assert.equal(waiting.jobParams?.priority, 4);
      const woken = second.dequeue("default", {
        maxJobs: 1,
        visibilityTimeoutMs: 30_000,
        signal: AbortSignal.timeout(5_000),
      });
      await clock.advance(59_000);
      await clock.advance(1_000);
      const [started] = await woken;
      assert.equal(started?.job.jobId, job.jobId, "the reopened store's timer wakes the dequeue");
      assert.equal(started?.job.attempt, 1);
    } finally {
      await second.close();
    }
  });
});
