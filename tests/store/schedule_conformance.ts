/**
 * Conformance cases of the ScheduleStore every JobStore carries
 * (src/store/schedule_store.ts) and of listing jobs by metadata, which a
 * schedule's `get` and `list --schedule` read. Registered into the JobStore
 * suite by tests/store/conformance.ts, so they run on every backend.
 *
 * @module
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  ExecutionConfigSchema,
  JobParamsSchema,
  type Schedule,
  ScheduleSchema,
} from "../../gen/job/v1/job_pb.ts";
import {
  ScheduleExistsError,
  ScheduleNotFoundError,
  StoreClosedError,
  TooManySchedulesError,
} from "../../src/store/errors.ts";
import { MAX_SCHEDULES } from "../../src/protocol/limits.ts";
import type { StoreHarness } from "./conformance.ts";

type Register = (name: string, fn: (h: StoreHarness) => Promise<void>) => void;

function schedule(
  name: string,
  overrides: { cron?: string; paused?: boolean } = {},
): Schedule {
  return create(ScheduleSchema, {
    name,
    cron: "0 3 * * *",
    timeZone: "Europe/Berlin",
    overlap: "skip",
    catchUp: "latest",
    queue: "nightly",
    owner: "alice",
    jobParams: create(JobParamsSchema, {
      command: "backup",
      args: ["--all"],
      metadata: { team: "ops" },
      secretEnvironment: { TOKEN: "s3cret" },
    }),
    ...overrides,
  });
}

const executionConfig = create(ExecutionConfigSchema, { heartbeatIntervalSeconds: 30 });

function ms(t: Timestamp | undefined): number {
  assert.ok(t !== undefined, "timestamp set");
  return timestampMs(t);
}

/** Registers the schedule cases with the suite's `conformance`. */
export function registerScheduleCases(conformance: Register): void {
  conformance(
    "schedules: a put is read back whole, and its firing record starts at creation",
    async (h) => {
      const { schedules } = h.store;
      const before = h.now();
      const stored = await schedules.put(schedule("backup"), { replace: false });
      for (const read of [stored, await schedules.get("backup")]) {
        assert.equal(read.name, "backup");
        assert.equal(read.cron, "0 3 * * *");
        assert.equal(read.timeZone, "Europe/Berlin");
        assert.equal(read.overlap, "skip");
        assert.equal(read.catchUp, "latest");
        assert.equal(read.queue, "nightly");
        assert.equal(read.owner, "alice");
        assert.equal(read.paused, false);
        assert.deepEqual(read.jobParams?.args, ["--all"]);
        assert.equal(read.jobParams?.secretEnvironment.TOKEN, "s3cret", "the store keeps secrets");
        assert.ok(ms(read.createdAt) >= before);
        assert.equal(ms(read.lastFiringAt), ms(read.createdAt), "fires from its creation on");
        assert.equal(read.lastJobId, "");
        assert.equal(read.nextFirings.length, 0, "the store computes no firings");
      }
      // A copy: changing what was returned changes nothing stored.
      stored.jobParams!.command = "changed";
      assert.equal((await schedules.get("backup")).jobParams?.command, "backup");
    },
  );

  conformance(
    "schedules: a name is unique unless replaced, and a replace keeps the record",
    async (h) => {
      const { schedules } = h.store;
      const first = await schedules.put(schedule("backup"), { replace: false });
      await assert.rejects(
        schedules.put(schedule("backup", { cron: "0 4 * * *" }), { replace: false }),
        ScheduleExistsError,
      );
      assert.equal(
        (await schedules.get("backup")).cron,
        "0 3 * * *",
        "the refused put wrote nothing",
      );
      const firing = ms(first.lastFiringAt) + 60_000;
      assert.equal(
        await schedules.recordFiring("backup", { lastFiringMs: firing, lastJobId: "j1" }),
        true,
      );
      await h.advance(5);
      const replaced = await schedules.put(
        schedule("backup", { cron: "0 4 * * *", paused: true }),
        {
          replace: true,
        },
      );
      assert.equal(replaced.cron, "0 4 * * *");
      assert.equal(replaced.paused, true);
      assert.equal(ms(replaced.createdAt), ms(first.createdAt), "creation time kept");
      assert.ok(ms(replaced.updatedAt) >= ms(first.updatedAt));
      assert.equal(ms(replaced.lastFiringAt), firing, "firing record kept");
      assert.equal(replaced.lastJobId, "j1");
      // A replace that unpauses resumes: it fires from then on, not for the paused time.
      const pausedAt = ms(
        (await schedules.put(schedule("later", { paused: true }), { replace: false }))
          .lastFiringAt,
      );
      await h.advance(50);
      const unpaused = await schedules.put(schedule("later"), { replace: true });
      assert.equal(unpaused.paused, false);
      assert.ok(ms(unpaused.lastFiringAt) >= pausedAt + 50, "the record moved to the replace");
    },
  );

  conformance("schedules: list is by name; get and delete of an unknown name fail", async (h) => {
    const { schedules } = h.store;
    assert.deepEqual(await schedules.list(), []);
    for (const name of ["zeta", "alpha", "mid.dle-1"]) {
      await schedules.put(schedule(name), { replace: false });
    }
    assert.deepEqual((await schedules.list()).map((s) => s.name), ["alpha", "mid.dle-1", "zeta"]);
    await schedules.delete("mid.dle-1");
    assert.deepEqual((await schedules.list()).map((s) => s.name), ["alpha", "zeta"]);
    await assert.rejects(schedules.get("mid.dle-1"), ScheduleNotFoundError);
    await assert.rejects(schedules.delete("mid.dle-1"), ScheduleNotFoundError);
    await assert.rejects(schedules.setPaused("nope", true), ScheduleNotFoundError);
    assert.equal(await schedules.recordFiring("nope", { lastFiringMs: h.now() + 1 }), false);
    // A deleted name can be created again, afresh.
    const again = await schedules.put(schedule("mid.dle-1"), { replace: false });
    assert.equal(again.lastJobId, "");
  });

  conformance(
    "schedules: a firing is recorded once, only forward, by the first scheduler",
    async (h) => {
      const { schedules } = h.store;
      const created = ms((await schedules.put(schedule("tick"), { replace: false })).lastFiringAt);
      const firing = created + 2_000;
      // Three schedulers record the same firing at once: one of them wins.
      const wins = await Promise.all(
        [1, 2, 3].map((n) =>
          schedules.recordFiring("tick", { lastFiringMs: firing, lastJobId: `job-${n}` })
        ),
      );
      assert.equal(
        wins.filter((w) => w).length,
        1,
        "one scheduler records the firing",
      );
      const recorded = await schedules.get("tick");
      assert.equal(ms(recorded.lastFiringAt), firing);
      assert.equal(recorded.lastJobId, `job-${wins.indexOf(true) + 1}`);
      // An earlier or equal firing changes nothing.
      assert.equal(
        await schedules.recordFiring("tick", { lastFiringMs: firing, lastJobId: "x" }),
        false,
      );
      assert.equal(
        await schedules.recordFiring("tick", { lastFiringMs: created, lastJobId: "x" }),
        false,
      );
      // A skipped firing moves the record but keeps the last job.
      assert.equal(await schedules.recordFiring("tick", { lastFiringMs: firing + 2_000 }), true);
      const skipped = await schedules.get("tick");
      assert.equal(ms(skipped.lastFiringAt), firing + 2_000);
      assert.equal(skipped.lastJobId, recorded.lastJobId);
    },
  );

  conformance("schedules: a resume fires from then on, not for the paused time", async (h) => {
    const { schedules } = h.store;
    const created = ms((await schedules.put(schedule("tick"), { replace: false })).lastFiringAt);
    const paused = await schedules.setPaused("tick", true);
    assert.equal(paused.paused, true);
    assert.equal((await schedules.get("tick")).paused, true);
    await h.advance(50);
    const resumed = await schedules.setPaused("tick", false);
    assert.equal(resumed.paused, false);
    assert.ok(ms(resumed.lastFiringAt) >= created + 50, "the record moved to the resume");
    // Resuming a running schedule changes nothing.
    const again = await schedules.setPaused("tick", false);
    assert.equal(ms(again.lastFiringAt), ms(resumed.lastFiringAt));
  });

  conformance(`schedules: at most ${MAX_SCHEDULES} are kept`, async (h) => {
    const { schedules } = h.store;
    const scheduleNamed = (name: string, cron = "* * * * *") =>
      create(ScheduleSchema, { name, cron, queue: "q" });
    for (let start = 0; start < MAX_SCHEDULES; start += 50) {
      await Promise.all(
        Array.from(
          { length: 50 },
          (_, i) =>
            schedules.put(scheduleNamed(`s${start + i}`), {
              replace: false,
            }),
        ),
      );
    }
    await assert.rejects(
      schedules.put(scheduleNamed("one-more"), { replace: false }),
      TooManySchedulesError,
    );
    await assert.rejects(schedules.get("one-more"), ScheduleNotFoundError);
    // Replacing one that exists still works when full.
    await schedules.put(scheduleNamed("s0", "0 * * * *"), {
      replace: true,
    });
    assert.equal((await schedules.list()).length, MAX_SCHEDULES);
  });

  conformance("schedules: a closed store refuses every schedule call", async (h) => {
    const { schedules } = h.store;
    await schedules.put(schedule("backup"), { replace: false });
    await h.store.close();
    for (
      const call of [
        () => schedules.list(),
        () => schedules.get("backup"),
        () => schedules.put(schedule("other"), { replace: false }),
        () => schedules.setPaused("backup", true),
        () => schedules.delete("backup"),
        () => schedules.recordFiring("backup", { lastFiringMs: h.now() + 1 }),
      ]
    ) {
      await assert.rejects(call(), StoreClosedError);
    }
  });

  conformance("listing by metadata finds the jobs holding every pair, newest first", async (h) => {
    const { store } = h;
    const jobWith = async (metadata: Record<string, string>) =>
      (await store.enqueue({
        requestId: "",
        queue: metadata.queue ?? "default",
        params: create(JobParamsSchema, { command: "true", metadata }),
        executionConfig,
      })).job.jobId;
    const a = await jobWith({ schedule: "nightly", team: "ops" });
    await jobWith({ schedule: "hourly", team: "ops" });
    const c = await jobWith({ schedule: "nightly" });
    await jobWith({});
    const d = await jobWith({ schedule: "nightly", queue: "other" });
    const ids = async (query: { metadata?: Record<string, string>; queue?: string }) =>
      (await store.listJobs({ page: 1, pageSize: 10, ...query })).jobs.map((j) => j.jobId);
    assert.deepEqual(await ids({ metadata: { schedule: "nightly" } }), [d, c, a]);
    assert.deepEqual(await ids({ metadata: { schedule: "nightly", team: "ops" } }), [a]);
    assert.deepEqual(await ids({ metadata: { schedule: "nightly" }, queue: "other" }), [d]);
    assert.deepEqual(await ids({ metadata: { schedule: "weekly" } }), []);
    assert.equal((await ids({})).length, 5, "no filter: every job");
    const page = await store.listJobs({ page: 2, pageSize: 2, metadata: { schedule: "nightly" } });
    assert.deepEqual(page.jobs.map((j) => j.jobId), [a]);
    assert.equal(page.lastPage, 2);
  });

  conformance("listing by owner and creation time finds the jobs within the bounds", async (h) => {
    const { store } = h;
    const jobOf = async (owner: string) =>
      (await store.enqueue({
        requestId: "",
        queue: "default",
        params: create(JobParamsSchema, { command: "true", owner }),
        executionConfig,
      })).job;
    const a = await jobOf("alice");
    await h.advance(20);
    const b = await jobOf("bob");
    await h.advance(20);
    const c = await jobOf("alice");
    const ids = async (query: Record<string, unknown>) =>
      (await store.listJobs({ page: 1, pageSize: 10, ...query })).jobs.map((j) => j.jobId);
    assert.deepEqual(await ids({ owner: "alice" }), [c.jobId, a.jobId]);
    assert.deepEqual(await ids({ owner: "nobody" }), []);
    const bAt = ms(b.createdAt);
    assert.deepEqual(await ids({ createdAfterMs: bAt }), [c.jobId, b.jobId], "after is inclusive");
    assert.deepEqual(await ids({ createdBeforeMs: bAt }), [a.jobId], "before is exclusive");
    assert.deepEqual(await ids({ createdAfterMs: bAt, createdBeforeMs: bAt + 1 }), [b.jobId]);
    assert.deepEqual(await ids({ owner: "alice", createdAfterMs: bAt }), [c.jobId]);
  });
}
