/** A dead letter made the quick way, straight through a memory store. */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  ExecutionConfigSchema,
  JobParamsSchema,
  JobResultSchema,
} from "../../gen/job/v1/job_pb.ts";
import type { MemoryJobStore } from "../../src/store/memory_store.ts";

/** A job on `queue` that failed with `exitCode` after its one retry of 100 ms: a dead letter. */
export async function deadLetter(
  store: MemoryJobStore,
  queue: string,
  exitCode: number,
  metadata: Record<string, string> = {},
  secretEnvironment: Record<string, string> = {},
): Promise<string> {
  const { job } = await store.enqueue({
    requestId: "",
    queue,
    params: create(JobParamsSchema, {
      command: "false",
      metadata,
      secretEnvironment,
      retry: { maxRetries: 1, minDelayMs: 100n, maxDelayMs: 100n },
    }),
    executionConfig: create(ExecutionConfigSchema, {}),
  });
  for (let attempt = 1; attempt <= 2; attempt++) {
    const [leased] = await store.dequeue(queue, {
      maxJobs: 1,
      visibilityTimeoutMs: 30_000,
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(leased?.job.jobId, job.jobId);
    await store.complete(
      leased!.taskToken,
      create(JobResultSchema, { jobId: job.jobId, success: false, exitCode }),
    );
  }
  assert.equal((await store.getJob(job.jobId)).failureReason, "exhausted");
  return job.jobId;
}
