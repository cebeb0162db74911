/**
 * Prints the heap a store keeps per finished job: `store_heap.ts STORE JOBS`
 * (run with --v8-flags=--expose-gc).
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { JobParamsSchema, JobResultSchema } from "../../gen/job/v1/job_pb.ts";
import { defaultExecutionConfig } from "../../src/server/execution_config.ts";
import type { JobStore } from "../../src/store/job_store.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { SqliteJobStore } from "../../src/store/sqlite/sqlite_store.ts";
import { TaskTokenCodec } from "../../src/store/task_token.ts";

const [storeKind, jobsText] = Deno.args;
const jobs = Number(jobsText);
const dir = await Deno.makeTempDir({ prefix: "airunner-heap-" });
const gc = (globalThis as unknown as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("store_heap: run with --v8-flags=--expose-gc");

const store: JobStore = storeKind === "memory" ? new MemoryJobStore() : SqliteJobStore.open({
  path: `${dir}/airunner.db`,
  tokenCodec: TaskTokenCodec.withRandomSecret(),
});
const executionConfig = defaultExecutionConfig();
gc();
const before = Deno.memoryUsage().heapUsed;
for (let i = 0; i < jobs; i++) {
  await store.enqueue({
    requestId: "",
    queue: "bench",
    params: create(JobParamsSchema, { command: "true" }),
    executionConfig,
  });
  const [leased] = await store.dequeue("bench", {
    maxJobs: 1,
    visibilityTimeoutMs: 60_000,
    signal: AbortSignal.timeout(1_000),
  });
  await store.complete(
    leased!.taskToken,
    create(JobResultSchema, { jobId: leased!.job.jobId, success: true }),
  );
}
gc();
console.log(Math.round((Deno.memoryUsage().heapUsed - before) / jobs));
await store.close();
await Deno.remove(dir, { recursive: true });
