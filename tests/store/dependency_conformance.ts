/**
 * Conformance cases of job dependencies (JobParams.after and after_any;
 * the rules are src/store/dependencies.ts's). Registered into the JobStore
 * suite by tests/store/conformance.ts, so they run on every backend.
 *
 * @module
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  ExecutionConfigSchema,
  type Job,
  JobParamsSchema,
  JobResultSchema,
  JobState,
  RetryPolicySchema,
} from "../../gen/job/v1/job_pb.ts";
import { InvalidArgumentError } from "../../src/protocol/invalid_argument.ts";
import type { JobStore, LeasedJob } from "../../src/store/job_store.ts";
import type { StoreHarness } from "./conformance.ts";

type Register = (name: string, fn: (h: StoreHarness) => Promise<void>) => void;

const QUEUE = "deps";
const executionConfig = create(ExecutionConfigSchema, { heartbeatIntervalSeconds: 30 });

async function enqueue(
  store: JobStore,
  name: string,
  deps: { after?: string[]; afterAny?: string[] } = {},
): Promise<Job> {
  const { job } = await store.enqueue({
    requestId: "",
    queue: QUEUE,
    params: create(JobParamsSchema, { command: "true", metadata: { name }, ...deps }),
    executionConfig,
  });
  return job;
}

/** The names of the jobs a short dequeue leases now. */
async function leasable(store: JobStore): Promise<LeasedJob[]> {
  return await store.dequeue(QUEUE, {
    maxJobs: 10,
    visibilityTimeoutMs: 30_000,
    signal: AbortSignal.timeout(400),
  });
}

function names(leased: readonly LeasedJob[]): string[] {
  return leased.map((l) => l.job.jobParams!.metadata.name!).sort();
}

async function finish(store: JobStore, leased: LeasedJob, exitCode: number): Promise<void> {
  await store.complete(
    leased.taskToken,
    create(JobResultSchema, { jobId: leased.job.jobId, success: exitCode === 0, exitCode }),
  );
}

/** Registers the dependency cases with the suite's `conformance`. */
export function registerDependencyCases(conformance: Register): void {
  conformance("dependencies: a job after others runs once every one COMPLETED", async (h) => {
    const { store } = h;
    const a1 = await enqueue(store, "a1");
    const a2 = await enqueue(store, "a2");
    const b = await enqueue(store, "b", { after: [a1.jobId, a2.jobId] });
    assert.equal(b.state, JobState.SCHEDULED);
    assert.deepEqual(b.waitingFor, [a1.jobId, a2.jobId], "enqueue says what it waits for");
    const first = await leasable(store);
    assert.deepEqual(names(first), ["a1", "a2"], "b is not leased while a1 and a2 run");
    await finish(store, first.find((l) => l.job.jobId === a1.jobId)!, 0);
    assert.deepEqual((await store.getJob(b.jobId)).waitingFor, [a2.jobId]);
    assert.deepEqual(await leasable(store), [], "one of two is not enough");
    await finish(store, first.find((l) => l.job.jobId === a2.jobId)!, 0);
    const got = await store.getJob(b.jobId);
    assert.deepEqual(got.waitingFor, []);
    assert.equal(got.state, JobState.SCHEDULED);
    assert.deepEqual(names(await leasable(store)), ["b"]);
  });

  conformance(
    "dependencies: a failure cancels the dependents down the chain; after_any runs",
    async (h) => {
      const { store } = h;
      const a = await enqueue(store, "a");
      const b = await enqueue(store, "b", { after: [a.jobId] });
      const c = await enqueue(store, "c", { after: [b.jobId] });
      const d = await enqueue(store, "d", { afterAny: [a.jobId] });
      const [leased] = await leasable(store);
      assert.equal(leased?.job.jobId, a.jobId);
      await finish(store, leased!, 2);
      const [gotB, gotC, gotD] = await Promise.all([b, c, d].map((j) => store.getJob(j.jobId)));
      assert.equal(gotB!.state, JobState.CANCELLED);
      assert.equal(gotB!.cancelReason, `dependency ${a.jobId} failed with exit 2`);
      assert.equal(gotC!.state, JobState.CANCELLED);
      assert.equal(gotC!.cancelReason, `dependency ${b.jobId} was cancelled`);
      assert.equal(gotB!.attempt, 0, "a cancelled dependent never ran");
      assert.equal(gotD!.state, JobState.SCHEDULED, "after_any: any outcome will do");
      assert.deepEqual(names(await leasable(store)), ["d"]);
    },
  );

  conformance("dependencies: a cancelled dependency cancels after, not after_any", async (h) => {
    const { store } = h;
    const a = await enqueue(store, "a");
    const b = await enqueue(store, "b", { after: [a.jobId] });
    const c = await enqueue(store, "c", { afterAny: [a.jobId] });
    await store.cancel(a.jobId, "not needed");
    assert.equal((await store.getJob(b.jobId)).cancelReason, `dependency ${a.jobId} was cancelled`);
    assert.deepEqual(names(await leasable(store)), ["c"]);
    assert.deepEqual((await store.getJob(c.jobId)).waitingFor, []);
    // A waiting dependent can be cancelled itself, and its own dependents follow.
    const x = await enqueue(store, "x");
    const y = await enqueue(store, "y", { after: [x.jobId] });
    const z = await enqueue(store, "z", { after: [y.jobId] });
    await store.cancel(y.jobId, "changed my mind");
    const gotY = await store.getJob(y.jobId);
    assert.equal(gotY.state, JobState.CANCELLED);
    assert.deepEqual(gotY.waitingFor, [], "an ended job waits for nothing");
    assert.equal((await store.getJob(z.jobId)).cancelReason, `dependency ${y.jobId} was cancelled`);
    assert.deepEqual(names(await leasable(store)), ["x"]);
  });

  conformance("dependencies: ones that ended before the enqueue decide it at once", async (h) => {
    const { store } = h;
    const ok = await enqueue(store, "ok");
    const bad = await enqueue(store, "bad");
    for (const leased of await leasable(store)) {
      await finish(store, leased, leased.job.jobId === ok.jobId ? 0 : 5);
    }
    const ready = await enqueue(store, "ready", { after: [ok.jobId] });
    assert.deepEqual(ready.waitingFor, []);
    const doomed = await enqueue(store, "doomed", { after: [ok.jobId, bad.jobId] });
    assert.equal(doomed.state, JobState.CANCELLED);
    assert.equal(doomed.cancelReason, `dependency ${bad.jobId} failed with exit 5`);
    const anyway = await enqueue(store, "anyway", { afterAny: [bad.jobId] });
    assert.equal(anyway.state, JobState.SCHEDULED);
    assert.deepEqual(names(await leasable(store)), ["anyway", "ready"]);
  });

  conformance(
    "dependencies: an id that does not exist is refused and nothing is stored",
    async (h) => {
      const { store } = h;
      const a = await enqueue(store, "a");
      const unknown = "01900000-0000-7000-8000-000000000000";
      for (const deps of [{ after: [unknown] }, { after: [a.jobId], afterAny: [unknown] }]) {
        await assert.rejects(enqueue(store, "orphan", deps), (error: unknown) => {
          assert.ok(error instanceof InvalidArgumentError, String(error));
          assert.match(error.field, /^job_params\.after(_any)?\[0\]$/);
          assert.match(error.message, new RegExp(`job ${unknown} does not exist`));
          return true;
        });
      }
      const { jobs } = await store.listJobs({ page: 1, pageSize: 10 });
      assert.deepEqual(jobs.map((j) => j.jobId), [a.jobId]);
    },
  );

  conformance(
    "dependencies: a lost lease of a dependency is no end; the dependent keeps waiting",
    async (h) => {
      const { store } = h;
      const a = await enqueue(store, "a");
      const b = await enqueue(store, "b", { after: [a.jobId] });
      const [leased] = await store.dequeue(QUEUE, {
        maxJobs: 1,
        visibilityTimeoutMs: 1_000,
        signal: AbortSignal.timeout(2_000),
      });
      assert.equal(leased?.job.jobId, a.jobId);
      await h.advance(1_500);
      const again = await leasable(store);
      assert.deepEqual(names(again), ["a"], "a again, b still waits");
      assert.deepEqual((await store.getJob(b.jobId)).waitingFor, [a.jobId]);
      await finish(store, again[0]!, 0);
      assert.deepEqual(names(await leasable(store)), ["b"]);
    },
  );

  conformance(
    "dependencies: a dependency waiting out a retry has not ended; its last attempt decides",
    async (h) => {
      const { store } = h;
      const { job: a } = await store.enqueue({
        requestId: "",
        queue: QUEUE,
        params: create(JobParamsSchema, {
          command: "flaky",
          metadata: { name: "a" },
          retry: create(RetryPolicySchema, {
            maxRetries: 1,
            minDelayMs: 1_000n,
            maxDelayMs: 1_000n,
          }),
        }),
        executionConfig,
      });
      const b = await enqueue(store, "b", { after: [a.jobId] });
      const [first] = await leasable(store);
      await finish(store, first!, 1);
      const retrying = await store.getJob(a.jobId);
      assert.equal(retrying.state, JobState.SCHEDULED, "a waits for its retry");
      assert.deepEqual((await store.getJob(b.jobId)).waitingFor, [a.jobId], "b still waits");
      await h.advance(2_100);
      const [second] = await leasable(store);
      assert.equal(second?.job.jobId, a.jobId, "the retry, not b");
      await finish(store, second!, 0);
      assert.deepEqual(names(await leasable(store)), ["b"]);
    },
  );

  conformance("dependencies: a delayed start and dependencies both hold", async (h) => {
    const { store } = h;
    const a = await enqueue(store, "a");
    const { job: b } = await store.enqueue({
      requestId: "",
      queue: QUEUE,
      params: create(JobParamsSchema, {
        command: "true",
        metadata: { name: "b" },
        after: [a.jobId],
        delayMs: 2_000n,
      }),
      executionConfig,
    });
    const [leased] = await leasable(store);
    await finish(store, leased!, 0);
    const got = await store.getJob(b.jobId);
    assert.deepEqual(got.waitingFor, [], "its dependency ended");
    assert.deepEqual(await leasable(store), [], "but its start is not due yet");
    await h.advance(3_100);
    assert.deepEqual(names(await leasable(store)), ["b"]);
  });
}
