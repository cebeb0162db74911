/**
 * ScheduleService over HTTP on a token-guarded server: who may manage which
 * schedule, bad input named by field and storing nothing, secrets hidden
 * from readers but given to the jobs, and get's firings and jobs.
 */
import assert from "node:assert/strict";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { JobState, ScheduleService } from "../../gen/job/v1/job_pb.ts";
import { ApiTokenVerifier, mintApiToken } from "../../src/auth/jwt.ts";
import { generateP256KeyPair } from "../../src/auth/keys.ts";
import type { Scope } from "../../src/auth/scopes.ts";
import { createAirunnerClients, createAirunnerTransport } from "../../src/protocol/transport.ts";
import { startServer } from "../../src/server/http_server.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { memoryLog } from "../support/memory_log.ts";

const keys = await generateP256KeyPair();

async function withScheduleServer(
  fn: (
    clientOf: (subject: string, scope: Scope) => Promise<ReturnType<typeof scheduleClient>>,
    store: MemoryJobStore,
    url: string,
  ) => Promise<void>,
) {
  const store = new MemoryJobStore();
  const server = await startServer({
    store,
    logger: memoryLog().logger,
    hostname: "127.0.0.1",
    port: 0,
    auth: new ApiTokenVerifier([keys.publicKey]),
    // The loop itself is tested in scheduler_test.ts; here only the RPCs act.
    scheduler: false,
  });
  try {
    await fn(
      async (subject, scope) => {
        const token = await mintApiToken(keys.privateKey, {
          subject,
          scopes: [scope],
          ttlSeconds: 600,
        });
        return scheduleClient(server.url, token);
      },
      store,
      server.url,
    );
  } finally {
    await server.close();
    await store.close();
  }
}

function scheduleClient(serverUrl: string, token: string) {
  return createClient(ScheduleService, createAirunnerTransport({ serverUrl, token }));
}

function nightly(name = "nightly", fields: Record<string, unknown> = {}) {
  return {
    schedule: {
      name,
      cron: "0 3 * * *",
      timeZone: "Europe/Berlin",
      queue: "default",
      jobParams: { command: "backup", secretEnvironment: { TOKEN: "s3cr3t-value" } },
      ...fields,
    },
  };
}

async function rejectsWith(promise: Promise<unknown>, code: Code, pattern: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    const e = ConnectError.from(error);
    assert.equal(Code[e.code], Code[code], e.message);
    assert.match(e.rawMessage, pattern);
    return true;
  });
}

Deno.test("schedules: submit manages its own, not another's; admin manages all", async () => {
  await withScheduleServer(async (clientOf, store) => {
    const alice = await clientOf("alice", "submit");
    const bob = await clientOf("bob", "submit");
    const admin = await clientOf("ops", "admin");
    const worker = await clientOf("w1", "worker");
    const created = await alice.createSchedule(nightly());
    assert.equal(created.schedule?.owner, "alice");
    // Reads are open to submit.
    assert.equal((await bob.getSchedule({ name: "nightly" })).schedule?.owner, "alice");
    assert.equal((await bob.listSchedules({})).schedules.length, 1);
    // Managing is the owner's.
    for (
      const call of [
        () => bob.pauseSchedule({ name: "nightly" }),
        () => bob.resumeSchedule({ name: "nightly" }),
        () => bob.deleteSchedule({ name: "nightly" }),
        () => bob.runSchedule({ name: "nightly" }),
        () => bob.createSchedule({ ...nightly(), replace: true }),
      ]
    ) {
      await rejectsWith(call(), Code.PermissionDenied, /belongs to "alice".*admin manages all/);
    }
    assert.equal((await store.listJobs({ page: 1, pageSize: 10 })).jobs.length, 0);
    assert.equal((await store.schedules.get("nightly")).paused, false);
    // A worker token may not touch schedules at all.
    await rejectsWith(worker.listSchedules({}), Code.PermissionDenied, /needs submit/);
    // The owner and admin may.
    assert.equal((await alice.pauseSchedule({ name: "nightly" })).schedule?.paused, true);
    assert.equal((await admin.resumeSchedule({ name: "nightly" })).schedule?.paused, false);
    const replaced = await admin.createSchedule({
      ...nightly("nightly", { cron: "0 4 * * *" }),
      replace: true,
    });
    assert.equal(replaced.schedule?.owner, "alice", "a replace keeps the owner");
    await admin.deleteSchedule({ name: "nightly" });
    await rejectsWith(alice.getSchedule({ name: "nightly" }), Code.NotFound, /not found/);
  });
});

Deno.test("schedules: bad input names the field and stores nothing", async () => {
  await withScheduleServer(async (clientOf, store) => {
    const alice = await clientOf("alice", "submit");
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ cron: "* * *" }, /^schedule\.cron: "\* \* \*" has 3 fields/],
      [{ cron: "61 * * * *" }, /^schedule\.cron: .*not a cron expression/],
      [{ timeZone: "Mars/Olympus" }, /^schedule\.time_zone: .*not a time zone/],
      [
        { overlap: "queue" },
        /^schedule\.overlap: is "queue"; give one of skip, allow, cancel-previous/,
      ],
      [{ catchUp: "all" }, /^schedule\.catch_up: is "all"; give one of none, latest/],
      [{ name: "-x" }, /^schedule\.name: .*start with a letter or digit/],
      [{ name: "a".repeat(65) }, /^schedule\.name: is 65 characters, more than the limit of 64/],
      [{ queue: "bad queue" }, /^schedule\.queue: may contain only/],
      [{ jobParams: { command: "" } }, /^schedule\.job_params\.command: is required/],
      [
        { jobParams: { command: "x", delayMs: 5n } },
        /^schedule\.job_params: sets delay_ms or run_at/,
      ],
      [
        { jobParams: { command: "x", priority: 101 } },
        /^schedule\.job_params\.priority: is 101, outside -100\.\.100/,
      ],
      [{ cron: "0 0 31 2 *" }, /^schedule\.cron: "0 0 31 2 \*" never fires/],
      [
        { jobParams: { command: "x", metadata: { schedule: "other" } } },
        /^schedule\.job_params\.metadata\[schedule\]: is set by the scheduler/,
      ],
      [
        { jobParams: { command: "x", args: ["a".repeat(40_000), "b".repeat(40_000)] } },
        /^schedule: is \d+ bytes encoded, more than the limit of 65536/,
      ],
    ];
    for (const [fields, pattern] of cases) {
      await rejectsWith(
        alice.createSchedule(nightly("nightly", fields)),
        Code.InvalidArgument,
        pattern,
      );
    }
    assert.deepEqual(await store.schedules.list(), []);
    await rejectsWith(alice.getSchedule({ name: "" }), Code.InvalidArgument, /^name: is required/);
    await alice.createSchedule(nightly());
    await rejectsWith(alice.createSchedule(nightly()), Code.AlreadyExists, /exists already/);
  });
});

Deno.test("schedules: readers never see secret values; a run's job gets them, with schedule metadata", async () => {
  await withScheduleServer(async (clientOf, store) => {
    const alice = await clientOf("alice", "submit");
    const created = await alice.createSchedule(nightly());
    assert.deepEqual(created.schedule?.jobParams?.secretEnvironment, { TOKEN: "***" });
    const got = await alice.getSchedule({ name: "nightly" });
    assert.deepEqual(got.schedule?.jobParams?.secretEnvironment, { TOKEN: "***" });
    assert.deepEqual(
      (await alice.listSchedules({})).schedules[0]?.jobParams?.secretEnvironment,
      { TOKEN: "***" },
    );
    const { job } = await alice.runSchedule({ name: "nightly" });
    assert.deepEqual(job?.jobParams?.secretEnvironment, { TOKEN: "***" });
    assert.equal(job?.jobParams?.metadata.schedule, "nightly");
    assert.equal(job?.state, JobState.SCHEDULED);
    // The store (and so the worker that leases the job) has the value.
    const stored = await store.getJob(job!.jobId);
    assert.equal(stored.jobParams?.secretEnvironment.TOKEN, "s3cr3t-value");
  });
});

Deno.test("schedules: get shows the next 5 firings in the zone and the latest 10 jobs", async () => {
  await withScheduleServer(async (clientOf) => {
    const alice = await clientOf("alice", "submit");
    await alice.createSchedule(nightly());
    for (let i = 0; i < 12; i++) await alice.runSchedule({ name: "nightly" });
    const got = await alice.getSchedule({ name: "nightly" });
    const firings = got.schedule!.nextFirings.map(timestampMs);
    assert.equal(firings.length, 5);
    for (const at of firings) {
      // 03:00 in Berlin is 02:00 UTC in winter (and 01:00 in summer).
      assert.ok([1, 2].includes(new Date(at).getUTCHours()), new Date(at).toISOString());
      assert.equal(new Date(at).getUTCMinutes(), 0);
    }
    assert.equal(got.recentJobs.length, 10);
    assert.ok(got.recentJobs.every((j) => j.jobParams?.metadata.schedule === "nightly"));
    const created = got.recentJobs.map((j) => timestampMs(j.createdAt!));
    assert.deepEqual(created, [...created].sort((a, b) => b - a), "newest first");
    // A paused schedule has no next firings.
    await alice.pauseSchedule({ name: "nightly" });
    assert.equal((await alice.getSchedule({ name: "nightly" })).schedule!.nextFirings.length, 0);
  });
});

Deno.test("schedules: one submit token has at most 100; admin is not limited", async () => {
  await withScheduleServer(async (clientOf, store) => {
    const alice = await clientOf("alice", "submit");
    const admin = await clientOf("ops", "admin");
    for (let i = 0; i < 100; i++) await alice.createSchedule(nightly(`a${i}`));
    await rejectsWith(
      alice.createSchedule(nightly("a100")),
      Code.ResourceExhausted,
      /"alice" has 100 schedules, the most one owner may have/,
    );
    // Replacing one of hers still works; another owner is not held back.
    await alice.createSchedule({ ...nightly("a0", { cron: "0 4 * * *" }), replace: true });
    await (await clientOf("bob", "submit")).createSchedule(nightly("b0"));
    await admin.createSchedule(nightly("ops0"));
    assert.equal((await store.schedules.list()).length, 102);
  });
});

Deno.test("schedules: a client may not pose as a schedule's firing or claim its metadata", async () => {
  await withScheduleServer(async (_clientOf, store, url) => {
    const token = await mintApiToken(keys.privateKey, {
      subject: "mallory",
      scopes: ["submit"],
      ttlSeconds: 600,
    });
    const { jobs } = createAirunnerClients({ serverUrl: url, token });
    await rejectsWith(
      jobs.enqueueJob({
        requestId: "schedule:nightly:2026-12-24T02:00:00.000Z",
        queue: "default",
        jobParams: { command: "true" },
      }),
      Code.InvalidArgument,
      /^request_id: begins with "schedule:", which is kept for the jobs of schedules' firings/,
    );
    for (const key of ["schedule", "schedule_firing"]) {
      await rejectsWith(
        jobs.enqueueJob({
          queue: "default",
          jobParams: { command: "true", metadata: { [key]: "x" } },
        }),
        Code.InvalidArgument,
        new RegExp(`^job_params\\.metadata\\[${key}\\]: is set by the scheduler`),
      );
      await rejectsWith(
        jobs.enqueueJobs({
          jobs: [{ queue: "default", jobParams: { command: "true", metadata: { [key]: "x" } } }],
        }),
        Code.InvalidArgument,
        new RegExp(`^jobs\\[0\\]\\.job_params\\.metadata\\[${key}\\]`),
      );
    }
    assert.equal((await store.listJobs({ page: 1, pageSize: 10 })).jobs.length, 0);
  });
});
