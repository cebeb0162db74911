import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { type JobEvent, JobParamsSchema, StreamType } from "../../gen/job/v1/job_pb.ts";
import { systemClock } from "../../src/clock.ts";
import { defaultExecutionConfig } from "../../src/server/execution_config.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { executeJob } from "../../src/worker/job_execution.ts";
import { OutputBudget } from "../../src/worker/output_budget.ts";
import type { WorkerApi } from "../../src/worker/worker_api.ts";
import { memoryLog } from "../support/memory_log.ts";
import { storeWorkerApi } from "../support/store_worker_api.ts";

Deno.test("output budget: cap + 1 bytes pass, the crossing chunk is cut, then nothing", () => {
  const budget = new OutputBudget(5n);
  assert.equal(budget.take(new Uint8Array(4)).byteLength, 4);
  assert.equal(budget.exhausted, false);
  assert.equal(budget.take(new Uint8Array(10)).byteLength, 2);
  assert.equal(budget.exhausted, true);
  assert.equal(budget.take(new Uint8Array(1)).byteLength, 0);
});

Deno.test("output budget: exactly the cap passes whole and leaves one byte", () => {
  const budget = new OutputBudget(5n);
  assert.equal(budget.take(new Uint8Array(5)).byteLength, 5);
  assert.equal(budget.exhausted, false);
});

Deno.test("output budget: 0 is no cap", () => {
  const budget = new OutputBudget(0n);
  assert.equal(budget.take(new Uint8Array(1 << 20)).byteLength, 1 << 20);
  assert.equal(budget.exhausted, false);
});

Deno.test("a worker sends at most cap + 1 bytes of a job's output; the job runs to its end", async () => {
  const store = new MemoryJobStore({ maxJobOutputBytes: 1000 });
  const { job } = await store.enqueue({
    requestId: "",
    queue: "default",
    // 1 MB on stdout, then a line on stderr and an exit code of its own.
    params: create(JobParamsSchema, {
      command: "sh",
      args: ["-c", "head -c 1000000 /dev/zero | tr '\\0' y; echo late >&2; exit 7"],
    }),
    executionConfig: defaultExecutionConfig(1000),
  });
  const [leased] = await store.dequeue("default", {
    maxJobs: 1,
    visibilityTimeoutMs: 30_000,
    signal: AbortSignal.timeout(1000),
  });
  const api = storeWorkerApi(store);
  let sentBytes = 0;
  const countOutput = (events: readonly JobEvent[]) => {
    for (const e of events) {
      if (e.eventData.case !== "outputBatch") continue;
      for (const item of e.eventData.value.outputs) sentBytes += item.output.byteLength;
    }
  };
  // Output goes in publishes and, at the end, with the result.
  const counting: WorkerApi = {
    ...api,
    publishEvents: (token, events) => {
      countOutput(events);
      return api.publishEvents(token, events);
    },
    complete: (token, completion) => {
      countOutput(completion.lastEvents);
      return api.complete(token, completion);
    },
  };
  const outcome = await executeJob(leased!, {
    api: counting,
    clock: systemClock,
    logger: memoryLog().logger,
    baseEnv: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    visibilityTimeoutSeconds: 30,
    killGraceMs: 1000,
    workspaceRoot: `${Deno.env.get("TMPDIR") ?? "/tmp"}/airunner-test-workspaces`,
    keepWorkspaces: false,
  }, new AbortController().signal);
  assert.equal(outcome.kind, "completed");
  assert.equal(outcome.kind === "completed" && outcome.result.exitCode, 7);
  assert.equal(sentBytes, 1001);
  const stored: JobEvent[] = [];
  for await (
    const e of store.streamEvents(job.jobId, {
      fromSequence: 0n,
      fromTimestampMs: 0,
      eventTypes: new Set(),
      signal: AbortSignal.timeout(5_000),
    })
  ) stored.push(e);
  await store.close();
  const text = { stdout: "", stderr: "" };
  for (const e of stored) {
    if (e.eventData.case !== "outputBatch") continue;
    for (const item of e.eventData.value.outputs) {
      const chunk = new TextDecoder().decode(item.output);
      if (item.streamType === StreamType.STDERR) text.stderr += chunk;
      else text.stdout += chunk;
    }
  }
  assert.equal(text.stdout, "y".repeat(1000));
  assert.equal(text.stderr, "airunner: output truncated after 1000 bytes\n");
});
