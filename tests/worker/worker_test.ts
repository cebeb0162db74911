import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { JobParamsSchema, JobState } from "../../gen/job/v1/job_pb.ts";
import { systemClock } from "../../src/clock.ts";
import { defaultExecutionConfig } from "../../src/server/execution_config.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { startWorker, type WorkerOptions } from "../../src/worker/worker.ts";
import { memoryLog } from "../support/memory_log.ts";
import { storeWorkerApi } from "../support/store_worker_api.ts";

function options(store: MemoryJobStore, overrides: Partial<WorkerOptions> = {}): WorkerOptions {
  return {
    api: storeWorkerApi(store),
    queues: ["default"],
    concurrency: 1,
    clock: systemClock,
    logger: memoryLog().logger,
    baseEnv: { PATH: Deno.env.get("PATH") ?? "" },
    visibilityTimeoutSeconds: 30,
    killGraceMs: 500,
    shutdownGraceMs: 5_000,
    workspaceRoot: `${Deno.env.get("TMPDIR") ?? "/tmp"}/airunner-test-workspaces`,
    keepWorkspaces: false,
    ...overrides,
  };
}

async function submit(store: MemoryJobStore, command: string, args: string[]) {
  const { job } = await store.enqueue({
    requestId: "",
    queue: "default",
    params: create(JobParamsSchema, { command, args }),
    executionConfig: defaultExecutionConfig(),
  });
  return job.jobId;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("jobs run N at a time with --concurrency N, and overlap in time", async () => {
  await using store = new MemoryJobStore();
  const ids = await Promise.all(
    [0, 1, 2].map(() => submit(store, "sh", ["-c", "sleep 0.5"])),
  );
  const worker = startWorker(options(store, { concurrency: 3 }));
  const started = Date.now();
  await waitFor(async () =>
    (await Promise.all(ids.map((id) => store.getJob(id)))).every((j) =>
      j.state === JobState.COMPLETED
    )
  );
  assert.ok(Date.now() - started < 1400, `3 jobs of 0.5 s took ${Date.now() - started} ms`);
  await worker.close();
});

Deno.test("shutdown lets a running job finish, then the worker stops", async () => {
  await using store = new MemoryJobStore();
  const id = await submit(store, "sh", ["-c", "sleep 0.3; echo done"]);
  const worker = startWorker(options(store));
  await waitFor(async () => (await store.getJob(id)).state === JobState.RUNNING);
  assert.equal(worker.runningJobs, 1);
  worker.shutdown();
  await worker.finished;
  assert.equal((await store.getJob(id)).state, JobState.COMPLETED);
  const late = await submit(store, "true", []);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal((await store.getJob(late)).state, JobState.SCHEDULED, "no job taken after shutdown");
});

Deno.test("after the grace period, running jobs are stopped and handed back", async () => {
  await using store = new MemoryJobStore();
  const id = await submit(store, "sleep", ["30"]);
  const worker = startWorker(options(store, { shutdownGraceMs: 200 }));
  await waitFor(async () => (await store.getJob(id)).state === JobState.RUNNING);
  const started = Date.now();
  worker.shutdown();
  await worker.finished;
  assert.ok(Date.now() - started < 5_000);
  const job = await store.getJob(id);
  assert.equal(job.state, JobState.SCHEDULED, "handed back for another worker");
  assert.equal(job.attempt, 1);
});
