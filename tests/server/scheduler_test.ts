/**
 * The scheduler loop on a fake clock over a memory store: firings make
 * jobs on time, several schedulers make one job per firing, the overlap
 * and catch-up policies, pausing, and a schedule whose job cannot be
 * enqueued does not stop the others.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  ExecutionConfigSchema,
  type Job,
  JobParamsSchema,
  JobState,
  ScheduleSchema,
} from "../../gen/job/v1/job_pb.ts";
import { runScheduler } from "../../src/server/scheduler.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { FakeClock, settle } from "../support/fake_clock.ts";
import { memoryLog } from "../support/memory_log.ts";

const executionConfig = create(ExecutionConfigSchema, { heartbeatIntervalSeconds: 30 });

/** A store, schedulers over it on one fake clock, and a way to let time pass. */
async function withSchedulers(
  schedulers: number,
  fn: (h: {
    store: MemoryJobStore;
    clock: FakeClock;
    log: ReturnType<typeof memoryLog>;
    /** Lets `ms` pass a second at a time, so every firing is met on time. */
    pass(ms: number): Promise<void>;
    jobs(): Promise<Job[]>;
  }) => Promise<void>,
  startMs = Date.UTC(2026, 11, 4, 12, 0, 0, 500),
): Promise<void> {
  const clock = new FakeClock(startMs);
  const store = new MemoryJobStore({ clock });
  const log = memoryLog();
  const stop = new AbortController();
  const loops = Array.from(
    { length: schedulers },
    () => runScheduler({ store, logger: log.logger, executionConfig, clock, signal: stop.signal }),
  );
  try {
    await fn({
      store,
      clock,
      log,
      pass: async (ms) => {
        for (let t = 0; t < ms; t += 250) {
          await clock.advance(Math.min(250, ms - t));
          await settle();
        }
      },
      jobs: async () => (await store.listJobs({ page: 1, pageSize: 1000 })).jobs.reverse(),
    });
  } finally {
    stop.abort();
    await Promise.all(loops);
    await store.close();
  }
}

function schedule(name: string, fields: Record<string, unknown> = {}) {
  return create(ScheduleSchema, {
    name,
    cron: "*/2 * * * * *",
    overlap: "allow",
    catchUp: "none",
    queue: "default",
    jobParams: create(JobParamsSchema, { command: "date", metadata: { team: "ops" } }),
    ...fields,
  });
}

Deno.test("scheduler: a seconds schedule makes one job every 2 s, on its firing, with its metadata", async () => {
  await withSchedulers(1, async ({ store, pass, jobs }) => {
    await store.schedules.put(schedule("tick"), { replace: false });
    await pass(10_000);
    const made = await jobs();
    // 12:00:00.5 + 10 s: firings at :02, :04, :06, :08 and :10.
    assert.equal(made.length, 5);
    const created = made.map((j) => timestampMs(j.createdAt!));
    for (let i = 1; i < created.length; i++) {
      assert.ok(Math.abs(created[i]! - created[i - 1]! - 2_000) <= 250, `2 s apart: ${created}`);
    }
    for (const [i, job] of made.entries()) {
      assert.deepEqual(job.jobParams?.metadata, {
        team: "ops",
        schedule: "tick",
        schedule_firing: new Date(Date.UTC(2026, 11, 4, 12, 0, 2 + 2 * i)).toISOString(),
      });
    }
    const recorded = await store.schedules.get("tick");
    assert.equal(recorded.lastJobId, made.at(-1)!.jobId);
    assert.equal(timestampMs(recorded.lastFiringAt!), Date.UTC(2026, 11, 4, 12, 0, 10));
  });
});

Deno.test("scheduler: three schedulers over one store make one job per firing", async () => {
  await withSchedulers(3, async ({ store, pass, jobs }) => {
    await store.schedules.put(schedule("tick"), { replace: false });
    await pass(8_000);
    const made = await jobs();
    assert.equal(made.length, 4, "firings at :02, :04, :06, :08, once each");
    const firings = new Set(made.map((j) => Math.round(timestampMs(j.createdAt!) / 2_000)));
    assert.equal(firings.size, 4);
  });
});

Deno.test("scheduler: overlap skip makes no job while the previous one has not ended", async () => {
  await withSchedulers(1, async ({ store, pass, jobs, log }) => {
    await store.schedules.put(schedule("tick", { overlap: "skip" }), { replace: false });
    await pass(2_000);
    assert.equal((await jobs()).length, 1);
    // Nobody runs it: the next firings are skipped.
    await pass(4_000);
    assert.equal((await jobs()).length, 1);
    assert.ok(log.records().some((r) => String(r.msg).includes("overlap skip")));
    // Once it ends, the next firing makes a job again.
    await store.cancel((await jobs())[0]!.jobId, "done by hand");
    await pass(2_000);
    assert.equal((await jobs()).length, 2);
  });
});

Deno.test("scheduler: overlap cancel-previous cancels the previous job, then makes the next", async () => {
  await withSchedulers(1, async ({ store, pass, jobs }) => {
    await store.schedules.put(schedule("tick", { overlap: "cancel-previous" }), {
      replace: false,
    });
    await pass(4_000);
    const [first, second] = await jobs();
    assert.ok(first !== undefined && second !== undefined);
    assert.equal(first.state, JobState.CANCELLED);
    assert.match(
      first.cancelReason,
      /replaced by the firing of schedule tick at 2026-12-04T12:00:04/,
    );
    assert.equal(second.state, JobState.SCHEDULED);
  });
});

Deno.test("scheduler: overlap allow makes a job at every firing whatever runs", async () => {
  await withSchedulers(1, async ({ store, pass, jobs }) => {
    await store.schedules.put(schedule("tick", { overlap: "allow" }), { replace: false });
    await pass(6_000);
    const made = await jobs();
    assert.equal(made.length, 3);
    assert.ok(made.every((j) => j.state === JobState.SCHEDULED));
  });
});

for (const catchUp of ["latest", "none"] as const) {
  Deno.test(`scheduler: after the server was down over firings, catch-up ${catchUp}`, async () => {
    const clock = new FakeClock(Date.UTC(2026, 11, 4, 2, 0, 0));
    const store = new MemoryJobStore({ clock });
    // A nightly schedule stored at 02:00, then no scheduler ran until 09:30.
    await store.schedules.put(schedule("nightly", { cron: "0 3 * * *", catchUp }), {
      replace: false,
    });
    await clock.advance(7.5 * 3600_000);
    const stop = new AbortController();
    const log = memoryLog();
    const loop = runScheduler({
      store,
      logger: log.logger,
      executionConfig,
      clock,
      signal: stop.signal,
    });
    try {
      await settle();
      await clock.advance(1_000);
      await settle();
      const { jobs } = await store.listJobs({ page: 1, pageSize: 10 });
      assert.equal(jobs.length, catchUp === "latest" ? 1 : 0, "latest runs the missed firing once");
      const recorded = await store.schedules.get("nightly");
      assert.equal(timestampMs(recorded.lastFiringAt!), Date.UTC(2026, 11, 4, 3, 0, 0));
      if (catchUp === "none") {
        assert.ok(
          log.records().some((r) => r.msg === "schedule firings missed while no scheduler ran"),
        );
      }
      // Nothing more until the next night.
      await clock.advance(60_000);
      await settle();
      assert.equal((await store.listJobs({ page: 1, pageSize: 10 })).jobs.length, jobs.length);
    } finally {
      stop.abort();
      await loop;
      await store.close();
    }
  });
}

Deno.test("scheduler: a paused schedule makes no job; resumed, it fires from then on", async () => {
  await withSchedulers(1, async ({ store, pass, jobs }) => {
    await store.schedules.put(schedule("tick", { paused: true }), { replace: false });
    await pass(6_000);
    assert.equal((await jobs()).length, 0);
    await store.schedules.setPaused("tick", false);
    await pass(2_000);
    assert.equal((await jobs()).length, 1, "the firings while paused did not run");
  });
});

Deno.test("scheduler: a schedule whose job cannot be enqueued does not stop the others", async () => {
  await withSchedulers(1, async ({ store, pass, jobs, log }) => {
    await store.schedules.put(schedule("broken"), { replace: false });
    await store.schedules.put(schedule("fine"), { replace: false });
    const enqueue = store.enqueue.bind(store);
    store.enqueue = (input) =>
      input.params.metadata.schedule === "broken"
        ? Promise.reject(new Error("queue backend down"))
        : enqueue(input);
    await pass(4_000);
    const made = await jobs();
    assert.equal(made.length, 2);
    assert.ok(made.every((j) => j.jobParams?.metadata.schedule === "fine"));
    assert.ok(
      log.records().some((r) => r.schedule === "broken" && String(r.msg).includes("firing failed")),
    );
    // The broken one is not recorded as fired, so it is tried again once it can enqueue.
    store.enqueue = enqueue;
    await pass(1_000);
    assert.ok((await jobs()).some((j) => j.jobParams?.metadata.schedule === "broken"));
  });
});

Deno.test("scheduler: a schedule whose firing cannot be recorded does not stop the ones after it", async () => {
  await withSchedulers(1, async ({ store, pass, jobs }) => {
    await store.schedules.put(schedule("a-broken"), { replace: false });
    await store.schedules.put(schedule("b-fine"), { replace: false });
    const record = store.schedules.recordFiring.bind(store.schedules);
    store.schedules.recordFiring = (name, firing) =>
      name === "a-broken" ? Promise.reject(new Error("throttled")) : record(name, firing);
    await pass(4_000);
    const fine = (await jobs()).filter((j) => j.jobParams?.metadata.schedule === "b-fine");
    assert.equal(fine.length, 2, "the schedule after the broken one fired on time");
    // The broken one's firings made their jobs once each, however often they were retried.
    const broken = (await jobs()).filter((j) => j.jobParams?.metadata.schedule === "a-broken");
    assert.equal(
      new Set(broken.map((j) => j.jobParams?.metadata.schedule_firing)).size,
      broken.length,
    );
  });
});

Deno.test("scheduler: a schedule deleted or paused after the pass read it does not fire", async () => {
  await withSchedulers(1, async ({ store, pass, jobs }) => {
    await store.schedules.put(schedule("gone"), { replace: false });
    await store.schedules.put(schedule("paused"), { replace: false });
    const stale = await store.schedules.list();
    // Every pass gets the list as it was before the delete and the pause.
    store.schedules.list = () => Promise.resolve(stale);
    await store.schedules.delete("gone");
    await store.schedules.setPaused("paused", true);
    await pass(4_000);
    assert.deepEqual(await jobs(), []);
  });
});
