/**
 * The JobStore conformance suite. Every backend runs these cases unchanged,
 * through {@link defineStoreConformance} with a factory of its own; a backend
 * may skip a case only by lacking a capability the case names.
 *
 * @module
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  EventType,
  ExecutionConfigSchema,
  type Job,
  type JobEvent,
  JobParamsSchema,
  JobResultSchema,
  JobState,
  OutputItemSchema,
  RetryPolicySchema,
  StreamType,
} from "../../gen/job/v1/job_pb.ts";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  EventTooLargeError,
  IdempotencyConflictError,
  InvalidEventError,
  InvalidTaskTokenError,
  JobFinishedError,
  JobMismatchError,
  JobNotFoundError,
  JobNotRedrivableError,
  LeaseLostError,
  QueueMismatchError,
} from "../../src/store/errors.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { AttemptEndEventSchema } from "../../gen/job/v1/job_pb.ts";
import type { JobStore, LeasedJob, StreamEventsOptions } from "../../src/store/job_store.ts";
import { isUuid } from "../../src/protocol/job_id.ts";
import {
  MAX_ATTEMPT_ERROR_LENGTH,
  MAX_ERROR_MESSAGE_LENGTH,
  MAX_RECORDED_ATTEMPTS,
} from "../../src/protocol/limits.ts";
import { installStoreMeter } from "../../src/store/store_meter.ts";
import { firingRequestId, nextFirings } from "../../src/store/schedule_firings.ts";
import { InvalidArgumentError } from "../../src/protocol/invalid_argument.ts";
import { registerScheduleCases } from "./schedule_conformance.ts";
import { registerDependencyCases } from "./dependency_conformance.ts";

/** A store under test and a way to let its time pass. */
export interface StoreHarness {
  readonly store: JobStore;
  /** Lets `ms` of the store's time pass (a fake clock moves; a real one is slept on). */
  advance(ms: number): Promise<void>;
  /** The store's time, Unix ms. */
  now(): number;
  /** Stops the store and anything the harness started. */
  close(): Promise<void>;
}

/** Store options a case may ask for; every backend's factory passes them to its store. */
export interface StoreHarnessOptions {
  /** Most output bytes a job stores (0: no cap); the backend's default when absent. */
  readonly maxJobOutputBytes?: number;
}

/** Makes a fresh, empty store for one test case. */
export type StoreHarnessFactory = (options: StoreHarnessOptions) => Promise<StoreHarness>;

interface ConformanceCase {
  readonly name: string;
  readonly fn: (h: StoreHarness) => Promise<void>;
  readonly options: StoreHarnessOptions;
}

const cases: ConformanceCase[] = [];
function conformance(
  name: string,
  fn: (h: StoreHarness) => Promise<void>,
  options: StoreHarnessOptions = {},
): void {
  cases.push({ name, fn, options });
}

/** Number of cases in the suite. */
export function conformanceCaseCount(): number {
  return cases.length;
}

/**
 * Registers every case as a Deno test named `<backend> store: <case>`, plus
 * a last test that fails unless every case ran, so that a backend can never
 * drop out of the suite silently.
 */
export function defineStoreConformance(backend: string, factory: StoreHarnessFactory): void {
  let executed = 0;
  for (const c of cases) {
    Deno.test(`${backend} store: ${c.name}`, async () => {
      const harness = await factory(c.options);
      try {
        await c.fn(harness);
      } finally {
        await harness.close();
      }
      executed++;
    });
  }
  Deno.test(`${backend} store: ran all ${cases.length} conformance cases`, () => {
    console.log(`conformance: ${backend} executed ${executed} of ${cases.length} cases`);
    assert.equal(executed, cases.length);
  });
}

// ---------------------------------------------------------------- helpers

const QUEUE = "default";
const VISIBILITY_MS = 30_000;

function params(command = "echo", args: string[] = ["hello"]) {
  return create(JobParamsSchema, { command, args, environment: { A: "1" }, owner: "tester" });
}

const executionConfig = create(ExecutionConfigSchema, { heartbeatIntervalSeconds: 30 });

async function enqueue(store: JobStore, queue = QUEUE, requestId = ""): Promise<Job> {
  const { job } = await store.enqueue({
    requestId,
    queue,
    params: params(),
    executionConfig,
  });
  return job;
}

async function dequeueOne(
  store: JobStore,
  queue = QUEUE,
  visibilityTimeoutMs = VISIBILITY_MS,
): Promise<LeasedJob> {
  const jobs = await store.dequeue(queue, {
    maxJobs: 1,
    visibilityTimeoutMs,
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(jobs.length, 1, `expected a job on queue ${queue}`);
  return jobs[0]!;
}

/** Dequeues with a short real-time wait and returns what came back. */
function dequeueNow(store: JobStore, queue = QUEUE, maxJobs = 10): Promise<LeasedJob[]> {
  return store.dequeue(queue, {
    maxJobs,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(300),
  });
}

function result(jobId: string, exitCode: number) {
  return create(JobResultSchema, { jobId, success: exitCode === 0, exitCode });
}

function outputEvent(sequence: number, text: string, stream = StreamType.STDOUT): JobEvent {
  return makeEvent(BigInt(sequence), Date.now(), {
    case: "outputBatch",
    value: {
      $typeName: "job.v1.OutputBatchEvent",
      outputs: [create(OutputItemSchema, {
        output: new TextEncoder().encode(text),
        streamType: stream,
      })],
      startSequence: BigInt(sequence),
      endSequence: BigInt(sequence),
      firstTimestampMs: BigInt(Date.now()),
      playbackIntervalMillis: 0,
    },
  });
}

function startEvent(sequence: number, timestampMs = Date.now()): JobEvent {
  return makeEvent(BigInt(sequence), timestampMs, {
    case: "processStart",
    value: { $typeName: "job.v1.ProcessStartEvent", pid: 42 },
  });
}

function endEvent(sequence: number, exitCode = 0): JobEvent {
  return makeEvent(BigInt(sequence), Date.now(), {
    case: "processEnd",
    value: { $typeName: "job.v1.ProcessEndEvent", pid: 42, exitCode },
  });
}

function streamOptions(overrides: Partial<StreamEventsOptions> = {}): StreamEventsOptions {
  return {
    fromSequence: 0n,
    fromTimestampMs: 0,
    eventTypes: new Set(),
    signal: AbortSignal.timeout(10_000),
    ...overrides,
  };
}

async function collect(iterable: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  for await (const event of iterable) events.push(event);
  return events;
}

function sequences(events: JobEvent[]): bigint[] {
  return events.map((e) => e.sequence);
}

// ---------------------------------------------------------------- enqueue

conformance("enqueue creates a SCHEDULED job with a UUIDv7 id", async ({ store }) => {
  const { job, created } = await store.enqueue({
    requestId: "",
    queue: QUEUE,
    params: params("make", ["test"]),
    executionConfig,
  });
  assert.equal(created, true);
  assert.ok(isUuid(job.jobId), job.jobId);
  assert.equal(job.jobId[14], "7", "version nibble of a UUIDv7");
  assert.equal(job.state, JobState.SCHEDULED);
  assert.equal(job.queue, QUEUE);
  assert.equal(job.attempt, 0);
  assert.equal(job.jobParams?.command, "make");
  assert.deepEqual(job.jobParams?.args, ["test"]);
  assert.deepEqual(job.jobParams?.environment, { A: "1" });
  assert.ok(job.createdAt !== undefined);
  const fetched = await store.getJob(job.jobId);
  assert.equal(fetched.jobId, job.jobId);
  assert.equal(fetched.executionConfig?.heartbeatIntervalSeconds, 30);
});

conformance(
  "secret environment values are kept whole for the worker that leases the job",
  async ({ store }) => {
    const secretEnvironment = {
      TOKEN: "s3cr3t-value",
      KEY: "-----BEGIN KEY-----\nMIIabc\r\n-----END KEY-----\n",
      WORD: "pässwörd-€",
    };
    const { job } = await store.enqueue({
      requestId: "",
      queue: QUEUE,
      params: create(JobParamsSchema, { ...params(), secretEnvironment }),
      executionConfig,
    });
    assert.deepEqual(
      (await store.getJob(job.jobId)).jobParams?.secretEnvironment,
      secretEnvironment,
    );
    const leased = await dequeueOne(store);
    assert.deepEqual(leased.job.jobParams?.secretEnvironment, secretEnvironment);
    assert.deepEqual(leased.job.jobParams?.environment, { A: "1" });
  },
);

conformance(
  "a repeat with a request_id does not tell a secret value apart (no guessing oracle)",
  async ({ store }) => {
    const withSecret = (value: string, name = "TOKEN") =>
      create(JobParamsSchema, { ...params(), secretEnvironment: { [name]: value } });
    const first = await store.enqueue({
      requestId: "secret-key",
      queue: QUEUE,
      params: withSecret("right"),
      executionConfig,
    });
    const guess = await store.enqueue({
      requestId: "secret-key",
      queue: QUEUE,
      params: withSecret("wrong-guess"),
      executionConfig,
    });
    assert.equal(guess.created, false);
    assert.equal(guess.job.jobId, first.job.jobId);
    assert.equal(guess.job.jobParams?.secretEnvironment.TOKEN, "right", "the first job is kept");
    // Another secret name is another job.
    await assert.rejects(
      store.enqueue({
        requestId: "secret-key",
        queue: QUEUE,
        params: withSecret("right", "OTHER"),
        executionConfig,
      }),
      IdempotencyConflictError,
    );
  },
);

conformance("enqueue with a request_id is idempotent", async ({ store }) => {
  const first = await store.enqueue({
    requestId: "req-1",
    queue: QUEUE,
    params: params(),
    executionConfig,
  });
  const again = await store.enqueue({
    requestId: "req-1",
    queue: QUEUE,
    params: params(),
    executionConfig,
  });
  assert.equal(again.created, false);
  assert.equal(again.job.jobId, first.job.jobId);
  const page = await store.listJobs({ page: 1, pageSize: 50 });
  assert.equal(page.jobs.length, 1);
});

conformance("an empty request_id is no idempotency key", async ({ store }) => {
  const a = await enqueue(store);
  const b = await enqueue(store);
  assert.notEqual(a.jobId, b.jobId);
  assert.equal((await store.listJobs({ page: 1, pageSize: 50 })).jobs.length, 2);
});

conformance("a request_id reused with other parameters is refused", async ({ store }) => {
  await store.enqueue({ requestId: "req-2", queue: QUEUE, params: params(), executionConfig });
  await assert.rejects(
    store.enqueue({
      requestId: "req-2",
      queue: QUEUE,
      params: params("rm", ["-rf", "/"]),
      executionConfig,
    }),
    IdempotencyConflictError,
  );
  assert.equal((await store.listJobs({ page: 1, pageSize: 50 })).jobs.length, 1);
});

// ---------------------------------------------------------------- dequeue

conformance("enqueueBatch enqueues each job in order, as enqueue would", async ({ store }) => {
  const outcomes = await store.enqueueBatch(
    ["a", "b", "c", "d"].map((arg, i) => ({
      requestId: i === 1 ? "batch-key" : "",
      queue: QUEUE,
      params: params("echo", [arg]),
      executionConfig,
    })),
  );
  assert.equal(outcomes.length, 4);
  const jobs = outcomes.map((o) => {
    assert.ok(o.ok, "every item is enqueued");
    assert.equal(o.value.created, true);
    assert.equal(o.value.job.state, JobState.SCHEDULED);
    return o.value.job;
  });
  assert.equal(new Set(jobs.map((j) => j.jobId)).size, 4);
  const leased = await store.dequeue(QUEUE, {
    maxJobs: 10,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(5_000),
  });
  assert.deepEqual(leased.map((l) => l.job.jobId), jobs.map((j) => j.jobId), "FIFO in batch order");
  assert.deepEqual(leased.map((l) => l.job.jobParams?.args), [["a"], ["b"], ["c"], ["d"]]);
  assert.deepEqual(await store.enqueueBatch([]), []);
});

conformance("enqueueBatch answers each item: a conflict fails only its own", async ({ store }) => {
  const earlier = await enqueue(store, QUEUE, "key-1");
  const outcomes = await store.enqueueBatch([
    { requestId: "key-1", queue: QUEUE, params: params(), executionConfig },
    { requestId: "key-1", queue: QUEUE, params: params("other"), executionConfig },
    { requestId: "key-2", queue: QUEUE, params: params(), executionConfig },
    { requestId: "key-2", queue: QUEUE, params: params(), executionConfig },
  ]);
  assert.deepEqual(outcomes.map((o) => o.ok), [true, false, true, true]);
  const [repeat, conflict, fresh, repeatInBatch] = outcomes;
  assert.ok(repeat?.ok && !repeat.value.created && repeat.value.job.jobId === earlier.jobId);
  assert.ok(conflict !== undefined && !conflict.ok);
  assert.ok(conflict.error instanceof IdempotencyConflictError);
  assert.ok(fresh?.ok && fresh.value.created);
  assert.ok(repeatInBatch?.ok && !repeatInBatch.value.created);
  assert.equal(repeatInBatch.value.job.jobId, fresh.value.job.jobId);
  const all = await store.listJobs({ page: 1, pageSize: 10 });
  assert.equal(all.jobs.length, 2, "one job per request_id, nothing for the conflict");
});

conformance("a waiting dequeue is woken by a batch enqueue", async ({ store }) => {
  const waiting = store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(5_000),
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  const [outcome] = await store.enqueueBatch([
    { requestId: "", queue: QUEUE, params: params(), executionConfig },
  ]);
  assert.ok(outcome?.ok);
  const leased = await waiting;
  assert.equal(leased[0]?.job.jobId, outcome.value.job.jobId);
});

conformance("dequeue leases jobs FIFO per queue", async ({ store }) => {
  const a = await enqueue(store);
  const other = await enqueue(store, "other");
  const b = await enqueue(store);
  const first = await dequeueOne(store);
  const second = await dequeueOne(store);
  assert.equal(first.job.jobId, a.jobId);
  assert.equal(second.job.jobId, b.jobId);
  assert.equal(first.job.state, JobState.RUNNING);
  assert.equal(first.job.attempt, 1);
  assert.ok(first.taskToken.length > 0);
  assert.deepEqual(await dequeueNow(store), []);
  assert.equal((await dequeueOne(store, "other")).job.jobId, other.jobId);
  assert.equal((await store.getJob(a.jobId)).state, JobState.RUNNING);
});

conformance("dequeue takes at most max_jobs", async ({ store }) => {
  for (let i = 0; i < 3; i++) await enqueue(store);
  const two = await store.dequeue(QUEUE, {
    maxJobs: 2,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(two.length, 2);
  assert.equal((await dequeueNow(store)).length, 1);
});

conformance("a waiting dequeue is woken by an enqueue", async ({ store }) => {
  const waiting = store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(5_000),
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  const job = await enqueue(store);
  const leased = await waiting;
  assert.equal(leased.length, 1);
  assert.equal(leased[0]!.job.jobId, job.jobId);
});

conformance("a dequeue ends with no jobs when its signal aborts", async ({ store }) => {
  const controller = new AbortController();
  const waiting = store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: controller.signal,
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  controller.abort();
  assert.deepEqual(await waiting, []);
  // The queue still works afterwards, and no job was lost to the aborted wait.
  const job = await enqueue(store);
  assert.equal((await dequeueOne(store)).job.jobId, job.jobId);
});

conformance("a dequeue with maxWaitMs ends empty once that time has passed", async (h) => {
  const { store } = h;
  const waiting = store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(10_000),
    maxWaitMs: 1_000,
  });
  await h.advance(1_500);
  assert.deepEqual(await waiting, []);
  // A job enqueued later is still there for the next dequeue.
  const job = await enqueue(store);
  assert.equal((await dequeueOne(store)).job.jobId, job.jobId);
});

// ---------------------------------------------------------------- leases

conformance("an expired lease is redelivered as the next attempt", async (h) => {
  const { store } = h;
  const job = await enqueue(store);
  const later = await enqueue(store);
  const first = await dequeueOne(store, QUEUE, 1_000);
  assert.equal(first.job.jobId, job.jobId);
  await h.advance(1_500);
  assert.equal((await store.getJob(job.jobId)).state, JobState.SCHEDULED);
  const leased = [await dequeueOne(store, QUEUE, VISIBILITY_MS), await dequeueOne(store)];
  if (store.capabilities.redeliversBeforeNewerWork) {
    assert.deepEqual(leased.map((l) => l.job.jobId), [job.jobId, later.jobId]);
  }
  const second = leased.find((l) => l.job.jobId === job.jobId);
  assert.ok(second !== undefined, "the expired job is redelivered");
  assert.equal(second.job.attempt, 2);
  assert.equal(second.job.state, JobState.RUNNING);
  assert.ok(leased.some((l) => l.job.jobId === later.jobId));
});

conformance("a waiting dequeue is woken when a lease expires", async (h) => {
  const { store } = h;
  const job = await enqueue(store);
  await dequeueOne(store, QUEUE, 1_000);
  const waiting = store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(10_000),
  });
  await h.advance(1_500);
  const redelivered = await waiting;
  assert.equal(redelivered.length, 1);
  assert.equal(redelivered[0]!.job.jobId, job.jobId);
  assert.equal(redelivered[0]!.job.attempt, 2);
});

conformance("a waiter is woken by the expiry of a lease taken while it waited", async (h) => {
  const { store } = h;
  const first = store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: 1_000,
    signal: AbortSignal.timeout(10_000),
  });
  const second = store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(10_000),
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  const job = await enqueue(store);
  const [taken] = await first; // leased for 1 s, then its worker vanishes
  assert.equal(taken?.job.jobId, job.jobId);
  await h.advance(1_500);
  const [redelivered] = await second;
  assert.equal(redelivered?.job.jobId, job.jobId);
  assert.equal(redelivered?.job.attempt, 2);
});

conformance("an expired lease is lost even before the job is redelivered", async (h) => {
  const { store } = h;
  const job = await enqueue(store);
  const leased = await dequeueOne(store, QUEUE, 1_000);
  await h.advance(1_500);
  await assert.rejects(store.updateLease(leased.taskToken, QUEUE, VISIBILITY_MS), LeaseLostError);
  await assert.rejects(store.complete(leased.taskToken, result(job.jobId, 0)), LeaseLostError);
  assert.equal((await store.getJob(job.jobId)).state, JobState.SCHEDULED);
});

conformance("an older attempt's token can neither extend, publish nor complete", async (h) => {
  const { store } = h;
  const job = await enqueue(store);
  const stale = await dequeueOne(store, QUEUE, 1_000);
  await h.advance(1_500);
  const current = await dequeueOne(store);
  await assert.rejects(store.complete(stale.taskToken, result(job.jobId, 0)), LeaseLostError);
  await assert.rejects(store.updateLease(stale.taskToken, QUEUE, VISIBILITY_MS), LeaseLostError);
  await assert.rejects(store.publishEvents(stale.taskToken, [startEvent(1)]), LeaseLostError);
  const unchanged = await store.getJob(job.jobId);
  assert.equal(unchanged.state, JobState.RUNNING);
  assert.equal(unchanged.attempt, 2);
  assert.equal(
    await collectNow(store, job.jobId),
    1,
    "the stale publish stored nothing: the one event is the lost attempt's ATTEMPT_END",
  );
  await store.complete(current.taskToken, result(job.jobId, 0));
  assert.equal((await store.getJob(job.jobId)).state, JobState.COMPLETED);
});

/** Events stored for a job that is still running (the stream is cut after 300 ms). */
async function collectNow(store: JobStore, jobId: string): Promise<number> {
  const signal = AbortSignal.timeout(300);
  const events: JobEvent[] = [];
  await assert.rejects(
    (async () => {
      for await (const e of store.streamEvents(jobId, streamOptions({ signal }))) events.push(e);
    })(),
    (error: unknown) => error === signal.reason,
    "a stream cut short throws its signal's reason",
  );
  return events.length;
}

conformance("forged and tampered task tokens are refused", async ({ store }) => {
  const job = await enqueue(store);
  const { taskToken } = await dequeueOne(store);
  const [prefix, claims, mac] = taskToken.split(".");
  const tampered = `${prefix}.${claims}.${mac!.slice(0, -2)}${mac!.endsWith("AA") ? "BB" : "AA"}`;
  for (const bad of ["", "garbage", taskToken.slice(0, -5), tampered, `${taskToken}x`]) {
    await assert.rejects(store.complete(bad, result(job.jobId, 0)), InvalidTaskTokenError, bad);
    await assert.rejects(store.updateLease(bad, QUEUE, VISIBILITY_MS), InvalidTaskTokenError);
    await assert.rejects(store.publishEvents(bad, [startEvent(1)]), InvalidTaskTokenError);
  }
  assert.equal((await store.getJob(job.jobId)).state, JobState.RUNNING);
});

conformance("an extended lease is not redelivered", async (h) => {
  const { store } = h;
  const job = await enqueue(store);
  const leased = await dequeueOne(store, QUEUE, 2_000);
  await h.advance(1_200);
  await store.updateLease(leased.taskToken, QUEUE, 3_000);
  await h.advance(1_200);
  assert.deepEqual(await dequeueNow(store), []);
  assert.equal((await store.getJob(job.jobId)).state, JobState.RUNNING);
  await store.complete(leased.taskToken, result(job.jobId, 0));
});

conformance("a lease handed back with visibility 0 is redelivered at once", async ({ store }) => {
  const job = await enqueue(store);
  const first = await dequeueOne(store);
  await store.updateLease(first.taskToken, QUEUE, 0);
  assert.equal((await store.getJob(job.jobId)).state, JobState.SCHEDULED);
  const second = await dequeueOne(store);
  assert.equal(second.job.jobId, job.jobId);
  assert.equal(second.job.attempt, 2);
  await assert.rejects(store.complete(first.taskToken, result(job.jobId, 0)), LeaseLostError);
});

conformance("updating a lease on another queue is refused", async ({ store }) => {
  const job = await enqueue(store);
  const leased = await dequeueOne(store);
  await assert.rejects(store.updateLease(leased.taskToken, "other", 0), QueueMismatchError);
  assert.equal((await store.getJob(job.jobId)).state, JobState.RUNNING);
});

// ---------------------------------------------------------------- complete

conformance("complete records the result and finishes the job", async (h) => {
  const { store } = h;
  const ok = await enqueue(store);
  const bad = await enqueue(store);
  const okLease = await dequeueOne(store, QUEUE, 1_000);
  const badLease = await dequeueOne(store, QUEUE, 1_000);
  await store.complete(okLease.taskToken, result(ok.jobId, 0));
  assert.equal((await store.getJob(ok.jobId)).state, JobState.COMPLETED);
  await store.complete(
    badLease.taskToken,
    create(JobResultSchema, { jobId: bad.jobId, success: false, exitCode: 3 }),
  );
  const failed = await store.getJob(bad.jobId);
  assert.equal(failed.state, JobState.FAILED);
  assert.equal(failed.result?.exitCode, 3);
  assert.equal(failed.result?.success, false);
  assert.ok(failed.result?.completedAt !== undefined);
  // A finished job is never redelivered, and its token is dead.
  await h.advance(1_500);
  assert.deepEqual(await dequeueNow(store), []);
  await assert.rejects(store.complete(okLease.taskToken, result(ok.jobId, 7)), LeaseLostError);
  await assert.rejects(store.updateLease(okLease.taskToken, QUEUE, 1_000), LeaseLostError);
  assert.equal((await store.getJob(ok.jobId)).state, JobState.COMPLETED);
});

conformance("a completion sent again with the same result is a harmless resend", async (h) => {
  const { store } = h;
  const job = await enqueue(store);
  const leased = await dequeueOne(store, QUEUE, 1_000);
  assert.equal(await store.complete(leased.taskToken, result(job.jobId, 0)), true, "recorded");
  const finished = await store.getJob(job.jobId);
  await h.advance(1_500);
  // The worker never saw the acknowledgement and sends the same result again.
  assert.equal(await store.complete(leased.taskToken, result(job.jobId, 0)), false, "a resend");
  const [again] = await store.completeBatch([
    { taskToken: leased.taskToken, result: result(job.jobId, 0) },
  ]);
  assert.deepEqual(again, { ok: true, value: false });
  assert.deepEqual(await store.getJob(job.jobId), finished, "a resend changes nothing");
  // Another result from the same attempt is no resend.
  await assert.rejects(store.complete(leased.taskToken, result(job.jobId, 1)), LeaseLostError);
  assert.deepEqual(await dequeueNow(store), []);
});

conformance("completeBatch answers each completion on its own, in order", async ({ store }) => {
  const first = await enqueue(store);
  const second = await enqueue(store);
  const third = await enqueue(store);
  const [a, b, c] = await store.dequeue(QUEUE, {
    maxJobs: 3,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(5_000),
  });
  assert.ok(a !== undefined && b !== undefined && c !== undefined);
  const outcomes = await store.completeBatch([
    { taskToken: a.taskToken, result: result(first.jobId, 0) },
    { taskToken: "not-a-token", result: result(second.jobId, 0) },
    { taskToken: b.taskToken, result: result(second.jobId, 4) },
    { taskToken: c.taskToken, result: result(first.jobId, 0) },
  ]);
  assert.deepEqual(outcomes.map((o) => o.ok), [true, false, true, false]);
  assert.deepEqual([outcomes[0], outcomes[2]], [{ ok: true, value: true }, {
    ok: true,
    value: true,
  }]);
  assert.ok(!outcomes[1]!.ok && outcomes[1]!.error instanceof InvalidTaskTokenError);
  assert.ok(!outcomes[3]!.ok && outcomes[3]!.error instanceof JobMismatchError);
  assert.equal((await store.getJob(first.jobId)).state, JobState.COMPLETED);
  const failed = await store.getJob(second.jobId);
  assert.equal(failed.state, JobState.FAILED);
  assert.equal(failed.result?.exitCode, 4);
  assert.equal((await store.getJob(third.jobId)).state, JobState.RUNNING);
  assert.deepEqual(await store.completeBatch([]), []);
});

conformance("complete refuses a result for another job", async ({ store }) => {
  const job = await enqueue(store);
  const other = await enqueue(store);
  const leased = await dequeueOne(store);
  await assert.rejects(store.complete(leased.taskToken, result(other.jobId, 0)), JobMismatchError);
  assert.equal((await store.getJob(job.jobId)).state, JobState.RUNNING);
  assert.equal((await store.getJob(other.jobId)).state, JobState.SCHEDULED);
});

// ---------------------------------------------------------------- cancel

conformance(
  "a cancelled scheduled job is never dequeued and its stream ends",
  async ({ store }) => {
    const job = await enqueue(store);
    const later = await enqueue(store);
    const cancelled = await store.cancel(job.jobId, "not needed");
    assert.equal(cancelled.state, JobState.CANCELLED);
    assert.equal(cancelled.cancelReason, "not needed");
    assert.match(cancelled.result?.errorMessage ?? "", /cancelled: not needed/);
    assert.equal((await dequeueOne(store)).job.jobId, later.jobId);
    assert.deepEqual(await dequeueNow(store), []);
    assert.deepEqual(await collect(store.streamEvents(job.jobId, streamOptions())), []);
    await assert.rejects(store.cancel(job.jobId, "again"), JobFinishedError);
  },
);

conformance(
  "a cancelled running job is told at its next extension and ends CANCELLED",
  async ({ store }) => {
    const job = await enqueue(store);
    const leased = await dequeueOne(store);
    assert.deepEqual(await store.updateLease(leased.taskToken, QUEUE, VISIBILITY_MS), {
      cancelled: false,
    });
    const marked = await store.cancel(job.jobId, "");
    assert.equal(marked.state, JobState.RUNNING, "running until its worker stops it");
    assert.ok(marked.cancelReason !== "", "a default reason is recorded");
    await store.cancel(job.jobId, "twice is harmless");
    assert.deepEqual(await store.updateLease(leased.taskToken, QUEUE, VISIBILITY_MS), {
      cancelled: true,
    });
    await store.complete(
      leased.taskToken,
      create(JobResultSchema, { jobId: job.jobId, success: false, exitCode: 143 }),
    );
    const finished = await store.getJob(job.jobId);
    assert.equal(finished.state, JobState.CANCELLED);
    assert.equal(finished.result?.exitCode, 143);
  },
);

conformance("a cancelled job whose worker vanished ends CANCELLED, not redelivered", async (h) => {
  const { store } = h;
  const job = await enqueue(store);
  const gone = await enqueue(store);
  const first = await dequeueOne(store, QUEUE, 1_000);
  const second = await dequeueOne(store, QUEUE, 1_000);
  await store.cancel(job.jobId, "stop");
  await store.cancel(gone.jobId, "stop");
  await store.updateLease(second.taskToken, QUEUE, 0); // handed back
  await h.advance(1_500); // first's lease runs out
  assert.equal((await store.getJob(job.jobId)).state, JobState.CANCELLED);
  assert.equal((await store.getJob(gone.jobId)).state, JobState.CANCELLED);
  assert.deepEqual(await dequeueNow(store), []);
  await assert.rejects(store.updateLease(first.taskToken, QUEUE, 1_000), LeaseLostError);
  await assert.rejects(store.cancel("01890a5d-ac96-774b-bcce-b302099a8057", ""), JobNotFoundError);
});

conformance("a cancel's result says whether a worker had the job when it stopped", async (h) => {
  const { store } = h;
  const late = await enqueue(store); // its lease runs out, then it is cancelled while waiting
  const vanished = await enqueue(store); // cancelled while running, then its lease runs out
  const handedBack = await enqueue(store); // cancelled while running, then handed back
  await dequeueOne(store, QUEUE, 1_000);
  await dequeueOne(store, QUEUE, 1_000);
  const third = await dequeueOne(store, QUEUE, 1_000);
  await store.cancel(vanished.jobId, "stop");
  await store.cancel(handedBack.jobId, "stop");
  await store.updateLease(third.taskToken, QUEUE, 0);
  await h.advance(1_500);
  const cancelledLate = await store.cancel(late.jobId, "late");
  assert.equal(cancelledLate.state, JobState.CANCELLED);
  assert.equal(cancelledLate.result?.errorMessage, "cancelled: late");
  for (const id of [late.jobId, vanished.jobId, handedBack.jobId]) {
    assert.equal((await store.getJob(id)).state, JobState.CANCELLED, id);
  }
  assert.equal((await store.getJob(late.jobId)).result?.errorMessage, "cancelled: late");
  for (const id of [vanished.jobId, handedBack.jobId]) {
    assert.equal(
      (await store.getJob(id)).result?.errorMessage,
      "cancelled: stop (its worker stopped before finishing)",
    );
  }
});

// ---------------------------------------------------------------- list and get

conformance("listJobs pages newest first, filtered by queue and state", async ({ store }) => {
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await enqueue(store)).jobId);
  const elsewhere = await enqueue(store, "other");
  const running = await dequeueOne(store); // ids[0]

  const all = await store.listJobs({ page: 1, pageSize: 50 });
  assert.deepEqual(all.jobs.map((j) => j.jobId), [elsewhere.jobId, ...[...ids].reverse()]);
  assert.equal(all.lastPage, 1);

  const p1 = await store.listJobs({ queue: QUEUE, page: 1, pageSize: 2 });
  const p2 = await store.listJobs({ queue: QUEUE, page: 2, pageSize: 2 });
  const p3 = await store.listJobs({ queue: QUEUE, page: 3, pageSize: 2 });
  assert.deepEqual(
    [...p1.jobs, ...p2.jobs, ...p3.jobs].map((j) => j.jobId),
    [...ids].reverse(),
  );
  assert.equal(p1.lastPage, 3);
  assert.deepEqual((await store.listJobs({ queue: QUEUE, page: 4, pageSize: 2 })).jobs, []);

  const runningOnly = await store.listJobs({ state: JobState.RUNNING, page: 1, pageSize: 50 });
  assert.deepEqual(runningOnly.jobs.map((j) => j.jobId), [running.job.jobId]);
  const none = await store.listJobs({ queue: "nope", page: 1, pageSize: 50 });
  assert.deepEqual(none, { jobs: [], lastPage: 1 });
});

conformance("unknown job ids are NotFound", async ({ store }) => {
  const missing = "01890a5d-ac96-774b-bcce-b302099a8057";
  await assert.rejects(store.getJob(missing), JobNotFoundError);
  await assert.rejects(collect(store.streamEvents(missing, streamOptions())), JobNotFoundError);
});

// ---------------------------------------------------------------- events

conformance(
  "events are numbered in one sequence; a batch takes one per item",
  async ({ store }) => {
    const job = await enqueue(store);
    const { taskToken } = await dequeueOne(store);
    const batch = makeEvent(2n, Date.now(), {
      case: "outputBatch",
      value: {
        $typeName: "job.v1.OutputBatchEvent",
        outputs: ["a", "b", "c"].map((t) =>
          create(OutputItemSchema, {
            output: new TextEncoder().encode(t),
            streamType: StreamType.STDOUT,
          })
        ),
        startSequence: 2n,
        endSequence: 4n,
        firstTimestampMs: BigInt(Date.now()),
        playbackIntervalMillis: 0,
      },
    });
    await store.publishEvents(taskToken, [startEvent(1), batch, endEvent(5)]);
    await store.complete(taskToken, result(job.jobId, 0));
    const events = await collect(store.streamEvents(job.jobId, streamOptions()));
    assert.deepEqual(sequences(events), [1n, 2n, 5n]);
    assert.deepEqual(events.map((e) => e.eventType), [
      EventType.PROCESS_START,
      EventType.OUTPUT_BATCH,
      EventType.PROCESS_END,
    ]);
    const stored = events[1]!.eventData;
    assert.equal(stored.case, "outputBatch");
    assert.equal(stored.value.startSequence, 2n);
    assert.equal(stored.value.endSequence, 4n);
    assert.equal(new TextDecoder().decode(stored.value.outputs[2]!.output), "c");
  },
);

conformance("a retried publish stores nothing twice", async ({ store }) => {
  const job = await enqueue(store);
  const { taskToken } = await dequeueOne(store);
  const events = [startEvent(1), outputEvent(2, "x"), outputEvent(3, "y")];
  await store.publishEvents(taskToken, events);
  await store.publishEvents(taskToken, events);
  await store.publishEvents(taskToken, [outputEvent(3, "y"), outputEvent(4, "z")]);
  await store.complete(taskToken, result(job.jobId, 0));
  const stored = await collect(store.streamEvents(job.jobId, streamOptions()));
  assert.deepEqual(sequences(stored), [1n, 2n, 3n, 4n]);
});

conformance("sequences keep increasing across attempts", async (h) => {
  const { store } = h;
  const job = await enqueue(store);
  const first = await dequeueOne(store, QUEUE, 1_000);
  await store.publishEvents(first.taskToken, [startEvent(1), outputEvent(2, "first try")]);
  await h.advance(1_500);
  const second = await dequeueOne(store);
  await store.publishEvents(second.taskToken, [startEvent(1), endEvent(2)]);
  await store.complete(second.taskToken, result(job.jobId, 0));
  const events = await collect(store.streamEvents(job.jobId, streamOptions()));
  assert.deepEqual(sequences(events), [1n, 2n, 3n, 4n, 5n]);
  assert.equal(events[2]!.eventType, EventType.ATTEMPT_END, "the lost attempt's end sits between");
});

conformance("unnumbered, gapped and overlapping events are refused", async ({ store }) => {
  const job = await enqueue(store);
  const { taskToken } = await dequeueOne(store);
  await assert.rejects(store.publishEvents(taskToken, [startEvent(0)]), /sequence is required/);
  await assert.rejects(store.publishEvents(taskToken, [startEvent(2)]), /skips ahead/);
  await store.publishEvents(taskToken, [startEvent(1), outputEvent(2, "x")]);
  const wide = outputEvent(2, "y");
  if (wide.eventData.case === "outputBatch") {
    wide.eventData.value.outputs.push(wide.eventData.value.outputs[0]!);
    wide.eventData.value.endSequence = 3n;
  }
  await assert.rejects(store.publishEvents(taskToken, [wide]), /overlaps/);
  await store.complete(taskToken, result(job.jobId, 0));
  const events = await collect(store.streamEvents(job.jobId, streamOptions()));
  assert.deepEqual(sequences(events), [1n, 2n]);
});

conformance("replay then live tail has no gap and no duplicate", async ({ store }) => {
  const job = await enqueue(store);
  const { taskToken } = await dequeueOne(store);
  await store.publishEvents(taskToken, [startEvent(1), outputEvent(2, "early")]);
  const following = collect(store.streamEvents(job.jobId, streamOptions()));
  let next = 3;
  for (let round = 0; round < 20; round++) {
    const batch = [outputEvent(next, `line ${next}`), outputEvent(next + 1, `line ${next + 1}`)];
    next += 2;
    await store.publishEvents(taskToken, batch);
    if (round % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await store.publishEvents(taskToken, [endEvent(next)]);
  await store.complete(taskToken, result(job.jobId, 0));
  const events = await following;
  assert.deepEqual(sequences(events), Array.from({ length: next }, (_, i) => BigInt(i + 1)));
});

conformance("the event filter applies to replay and live tail", async ({ store }) => {
  const job = await enqueue(store);
  const { taskToken } = await dequeueOne(store);
  await store.publishEvents(taskToken, [startEvent(1), outputEvent(2, "replayed")]);
  const following = collect(store.streamEvents(
    job.jobId,
    streamOptions({ eventTypes: new Set([EventType.PROCESS_START, EventType.PROCESS_END]) }),
  ));
  await new Promise((resolve) => setTimeout(resolve, 20));
  await store.publishEvents(taskToken, [outputEvent(3, "live"), endEvent(4)]);
  await store.complete(taskToken, result(job.jobId, 0));
  const events = await following;
  assert.deepEqual(events.map((e) => e.eventType), [
    EventType.PROCESS_START,
    EventType.PROCESS_END,
  ]);
  assert.deepEqual(sequences(events), [1n, 4n]);
});

conformance("from_sequence and from_timestamp bound the replay", async ({ store }) => {
  const job = await enqueue(store);
  const { taskToken } = await dequeueOne(store);
  const t0 = Date.UTC(2026, 0, 1);
  await store.publishEvents(taskToken, [
    startEvent(1, t0),
    startEvent(2, t0 + 1_000),
    startEvent(3, t0 + 2_000),
    startEvent(4, t0 + 3_000),
  ]);
  await store.complete(taskToken, result(job.jobId, 0));
  const fromSeq = await collect(store.streamEvents(job.jobId, streamOptions({ fromSequence: 3n })));
  assert.deepEqual(sequences(fromSeq), [3n, 4n]);
  const fromTime = await collect(
    store.streamEvents(job.jobId, streamOptions({ fromTimestampMs: t0 + 1_000 })),
  );
  assert.deepEqual(sequences(fromTime), [2n, 3n, 4n]);
});

conformance("a stream of a finished job ends; of a running job it waits", async ({ store }) => {
  const job = await enqueue(store);
  const { taskToken } = await dequeueOne(store);
  await store.publishEvents(taskToken, [startEvent(1)]);
  const controller = new AbortController();
  const seen: JobEvent[] = [];
  const following = (async () => {
    for await (
      const e of store.streamEvents(job.jobId, streamOptions({ signal: controller.signal }))
    ) {
      seen.push(e);
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(seen.length, 1, "the stream delivered the replay and kept waiting");
  controller.abort(new Error("stop following"));
  await assert.rejects(following, /stop following/);
  // Once the job has finished, a new stream replays and ends by itself.
  await store.complete(taskToken, result(job.jobId, 1));
  assert.equal((await collect(store.streamEvents(job.jobId, streamOptions()))).length, 1);
});

conformance(
  "an oversized event is refused and nothing of its publish is stored",
  async ({ store }) => {
    const job = await enqueue(store);
    const { taskToken } = await dequeueOne(store);
    const huge = outputEvent(2, "x".repeat(store.capabilities.maxEventBytes + 1));
    await assert.rejects(store.publishEvents(taskToken, [startEvent(1), huge]), EventTooLargeError);
    await store.publishEvents(taskToken, [startEvent(1)]);
    await store.complete(taskToken, result(job.jobId, 0));
    assert.deepEqual(sequences(await collect(store.streamEvents(job.jobId, streamOptions()))), [
      1n,
    ]);
  },
);

conformance(
  "a malformed event is refused and nothing of its publish is stored",
  async ({ store }) => {
    const job = await enqueue(store);
    const { taskToken } = await dequeueOne(store);
    const bad = outputEvent(2, "x");
    if (bad.eventData.case === "outputBatch") bad.eventData.value.endSequence = 9n;
    await assert.rejects(store.publishEvents(taskToken, [startEvent(1), bad]), InvalidEventError);
    const mismatched = startEvent(1);
    mismatched.eventType = EventType.OUTPUT;
    await assert.rejects(store.publishEvents(taskToken, [mismatched]), InvalidEventError);
    await store.complete(taskToken, result(job.jobId, 0));
    assert.deepEqual(await collect(store.streamEvents(job.jobId, streamOptions())), []);
  },
);

conformance("event timestamps default to the time of storage", async ({ store }) => {
  const job = await enqueue(store);
  const { taskToken } = await dequeueOne(store);
  const event = startEvent(1);
  delete (event as { timestamp?: unknown }).timestamp;
  await store.publishEvents(taskToken, [event]);
  await store.complete(taskToken, result(job.jobId, 0));
  const [stored] = await collect(store.streamEvents(job.jobId, streamOptions()));
  assert.ok(stored?.timestamp !== undefined);
  assert.ok(stored.timestamp.seconds > 0n);
});

// ---------------------------------------------------------------- output cap

/** Output of a batch event with one item per text, numbered from `sequence`. */
function outputBatch(sequence: number, texts: string[]): JobEvent {
  const event = outputEvent(sequence, texts[0] ?? "");
  if (event.eventData.case === "outputBatch") {
    const batch = event.eventData.value;
    batch.outputs = texts.map((text) =>
      create(OutputItemSchema, {
        output: new TextEncoder().encode(text),
        streamType: StreamType.STDOUT,
      })
    );
    batch.endSequence = BigInt(sequence + texts.length - 1);
  }
  return event;
}

/** A job's stored output, per stream, as text. */
function outputText(events: JobEvent[]): { stdout: string; stderr: string } {
  const text = { stdout: "", stderr: "" };
  for (const event of events) {
    if (event.eventData.case !== "outputBatch") continue;
    for (const item of event.eventData.value.outputs) {
      const chunk = new TextDecoder().decode(item.output);
      if (item.streamType === StreamType.STDERR) text.stderr += chunk;
      else text.stdout += chunk;
    }
  }
  return text;
}

/** The sequences every stored event occupies, in order (a batch one per item). */
function occupied(events: JobEvent[]): bigint[] {
  return events.flatMap((e) => {
    if (e.eventData.case !== "outputBatch") return [e.sequence];
    const { startSequence, endSequence } = e.eventData.value;
    assert.equal(e.sequence, startSequence);
    return Array.from(
      { length: Number(endSequence - startSequence) + 1 },
      (_, i) => startSequence + BigInt(i),
    );
  });
}

const MARKER_10 = "airunner: output truncated after 10 bytes\n";

conformance(
  "output cap: the publish that crosses it keeps up to the cap, then one marker; later output is dropped, lifecycle events are not",
  async ({ store }) => {
    const job = await enqueue(store);
    const { taskToken } = await dequeueOne(store);
    assert.equal(await store.publishEvents(taskToken, [startEvent(1), outputEvent(2, "hello")]), 2);
    // 5 + 3 fit; "defgh" crosses at its third byte; "ij" is past the cap.
    const crossing = outputBatch(3, ["abc", "defgh", "ij"]);
    assert.equal(await store.publishEvents(taskToken, [crossing]), 1);
    // Output alone after the cap stores nothing, and the next event still fits on.
    assert.equal(await store.publishEvents(taskToken, [outputEvent(6, "more")]), 0);
    assert.equal(
      await store.publishEvents(taskToken, [outputBatch(7, ["x", "y"]), endEvent(9, 3)]),
      1,
    );
    // A retried publish, whole or in part, changes nothing.
    const again = [crossing, outputEvent(6, "more"), outputBatch(7, ["x", "y"]), endEvent(9, 3)];
    assert.equal(await store.publishEvents(taskToken, again), 0);
    await store.complete(taskToken, result(job.jobId, 3));

    const events = await collect(store.streamEvents(job.jobId, streamOptions()));
    assert.deepEqual(outputText(events), { stdout: "helloabcde", stderr: MARKER_10 });
    assert.deepEqual(events.map((e) => e.eventType), [
      EventType.PROCESS_START,
      EventType.OUTPUT_BATCH,
      EventType.OUTPUT_BATCH,
      EventType.PROCESS_END,
    ]);
    // The marker takes one number; dropped output takes none: still gapless.
    assert.deepEqual(occupied(events), [1n, 2n, 3n, 4n, 5n, 6n]);
    const end = events.at(-1)!;
    assert.equal(end.eventData.case === "processEnd" && end.eventData.value.exitCode, 3);
  },
  { maxJobOutputBytes: 10 },
);

conformance(
  "output cap: a job printing exactly the cap stores all of it and no marker, until one byte more",
  async ({ store }) => {
    const exact = await enqueue(store);
    const leased = await dequeueOne(store);
    await store.publishEvents(leased.taskToken, [
      startEvent(1),
      outputBatch(2, ["hello", "world"]),
    ]);
    await store.publishEvents(leased.taskToken, [endEvent(4)]);
    await store.complete(leased.taskToken, result(exact.jobId, 0));
    const whole = await collect(store.streamEvents(exact.jobId, streamOptions()));
    assert.deepEqual(outputText(whole), { stdout: "helloworld", stderr: "" });
    assert.deepEqual(occupied(whole), [1n, 2n, 3n, 4n]);

    const over = await enqueue(store);
    const { taskToken } = await dequeueOne(store);
    await store.publishEvents(taskToken, [startEvent(1), outputBatch(2, ["hello", "world"])]);
    // The eleventh byte is the first one dropped: only then is the marker due.
    await store.publishEvents(taskToken, [outputEvent(4, "!"), outputEvent(5, "?"), endEvent(6)]);
    await store.complete(taskToken, result(over.jobId, 0));
    const events = await collect(store.streamEvents(over.jobId, streamOptions()));
    assert.deepEqual(outputText(events), { stdout: "helloworld", stderr: MARKER_10 });
    assert.deepEqual(occupied(events), [1n, 2n, 3n, 4n, 5n]);
    const marker = events[2]!;
    assert.equal(
      marker.eventData.case === "outputBatch" && marker.eventData.value.outputs.length,
      1,
    );
  },
  { maxJobOutputBytes: 10 },
);

conformance(
  "output cap: counts every attempt of a job, whose numbers go on increasing",
  async ({ store }) => {
    const job = await enqueue(store);
    const first = await dequeueOne(store);
    await store.publishEvents(first.taskToken, [startEvent(1), outputEvent(2, "123456")]);
    await store.updateLease(first.taskToken, QUEUE, 0);
    const second = await dequeueOne(store);
    assert.equal(second.job.attempt, 2);
    await store.publishEvents(second.taskToken, [startEvent(1), outputEvent(2, "abcdef")]);
    await store.updateLease(second.taskToken, QUEUE, 0);
    const third = await dequeueOne(store);
    // Everything of the third attempt's output is past the cap, and no second marker comes.
    await store.publishEvents(third.taskToken, [startEvent(1), outputEvent(2, "zzz")]);
    await store.publishEvents(third.taskToken, [endEvent(3)]);
    await store.complete(third.taskToken, result(job.jobId, 0));
    const events = await collect(store.streamEvents(job.jobId, streamOptions()));
    assert.deepEqual(outputText(events), { stdout: "123456abcd", stderr: MARKER_10 });
    assert.deepEqual(occupied(events), [1n, 2n, 3n, 4n, 5n, 6n, 7n]);
  },
  { maxJobOutputBytes: 10 },
);

conformance(
  "output cap 0 stores all output",
  async ({ store }) => {
    const job = await enqueue(store);
    const { taskToken } = await dequeueOne(store);
    const chunk = "x".repeat(100_000);
    await store.publishEvents(taskToken, [startEvent(1), outputBatch(2, [chunk, chunk, chunk])]);
    await store.publishEvents(taskToken, [endEvent(5)]);
    await store.complete(taskToken, result(job.jobId, 0));
    const events = await collect(store.streamEvents(job.jobId, streamOptions()));
    const text = outputText(events);
    assert.equal(text.stdout.length, 300_000);
    assert.equal(text.stderr, "");
  },
  { maxJobOutputBytes: 0 },
);

// ---------------------------------------------------------------- retries

/** Enqueues a job with this retry policy (delays in ms). */
async function enqueueRetrying(
  store: JobStore,
  policy: {
    maxRetries: number;
    minDelayMs?: number;
    maxDelayMs?: number;
    codes?: [number, number][];
  },
): Promise<Job> {
  const { job } = await store.enqueue({
    requestId: "",
    queue: QUEUE,
    params: create(JobParamsSchema, {
      ...params(),
      retry: create(RetryPolicySchema, {
        maxRetries: policy.maxRetries,
        minDelayMs: BigInt(policy.minDelayMs ?? 1_000),
        maxDelayMs: BigInt(policy.maxDelayMs ?? policy.minDelayMs ?? 1_000),
        retryOnExitCodes: (policy.codes ?? []).map(([first, last]) => ({ first, last })),
      }),
    }),
    executionConfig,
  });
  return job;
}

/** Fails the leased attempt with `exitCode` and returns the job after it. */
async function fail(store: JobStore, leased: LeasedJob, exitCode: number): Promise<Job> {
  await store.complete(leased.taskToken, result(leased.job.jobId, exitCode));
  return await store.getJob(leased.job.jobId);
}

/** Waits out a retry's backoff: `ms` of store time, plus a second for SQS's whole-second delays. */
async function waitOut(h: StoreHarness, job: Job): Promise<void> {
  await h.advance(Math.max(0, timestampMs(job.notBefore!) - h.now()) + 1_100);
}

conformance("a listed exit code retries after its backoff, SCHEDULED, not before", async (h) => {
  const { store } = h;
  const job = await enqueueRetrying(store, { maxRetries: 2, codes: [[2, 2], [75, 78]] });
  const first = await dequeueOne(store);
  const before = h.now();
  const waiting = await fail(store, first, 76);
  assert.equal(waiting.state, JobState.SCHEDULED);
  assert.ok(waiting.notBefore !== undefined, "get shows when the retry is due");
  const due = timestampMs(waiting.notBefore!);
  assert.ok(due >= before + 1_000 && due <= h.now() + 2_000, "the first retry waits min..2×min");
  assert.equal(waiting.result, undefined, "a job between attempts has no result yet");
  assert.deepEqual(
    (await dequeueNow(store)).map((l) => l.job.jobId),
    [],
    "nothing leases it early",
  );
  const listed = await store.listJobs({ page: 1, pageSize: 10, state: JobState.SCHEDULED });
  assert.ok(listed.jobs[0]?.notBefore !== undefined, "list shows it too");
  await waitOut(h, waiting);
  const second = await dequeueOne(store);
  assert.equal(second.job.jobId, job.jobId);
  assert.equal(second.job.attempt, 2);
  assert.equal(second.job.notBefore, undefined, "a running job waits for nothing");
  const done = await fail(store, second, 0);
  assert.equal(done.state, JobState.COMPLETED);
});

conformance("an exit code the policy does not list fails the job at once", async (h) => {
  const { store } = h;
  await enqueueRetrying(store, { maxRetries: 2, codes: [[2, 2]] });
  const failed = await fail(store, await dequeueOne(store), 1);
  assert.equal(failed.state, JobState.FAILED);
  assert.equal(failed.failureReason, "", "no retry applied: no dead letter");
  assert.equal(failed.result?.exitCode, 1);
});

conformance("with no list, 126 and 127 fail at once and other codes retry", async (h) => {
  const { store } = h;
  await enqueueRetrying(store, { maxRetries: 1 });
  assert.equal((await fail(store, await dequeueOne(store), 127)).state, JobState.FAILED);
  await enqueueRetrying(store, { maxRetries: 1 });
  assert.equal((await fail(store, await dequeueOne(store), 3)).state, JobState.SCHEDULED);
});

conformance("backoff doubles within its jitter bounds, then the job ends exhausted", async (h) => {
  const { store } = h;
  const job = await enqueueRetrying(store, { maxRetries: 2, minDelayMs: 1_000, maxDelayMs: 1_600 });
  let leased = await dequeueOne(store);
  const waits: number[] = [];
  for (let n = 1; n <= 2; n++) {
    const before = h.now();
    const waiting = await fail(store, leased, 3);
    assert.equal(waiting.state, JobState.SCHEDULED, `after attempt ${n}`);
    waits.push(timestampMs(waiting.notBefore!) - before);
    await waitOut(h, waiting);
    leased = await dequeueOne(store);
    assert.equal(leased.job.attempt, n + 1);
  }
  // Retry n draws from [cap / 2, cap] with cap = min(max, min × 2^(n+1)), never under min:
  // both waits fall in [1 s, 1.6 s] here (plus up to 500 ms of store time passing).
  assert.ok(waits[0]! >= 1_000 && waits[0]! <= 1_600 + 500, `first wait ${waits[0]}`);
  assert.ok(waits[1]! >= 1_000 && waits[1]! <= 1_600 + 500, `second wait ${waits[1]}`);
  const dead = await fail(store, leased, 3);
  assert.equal(dead.state, JobState.FAILED);
  assert.equal(dead.failureReason, "exhausted");
  assert.equal(dead.result?.errorMessage, "3 of 3 attempts failed; last exit 3");
  assert.equal(dead.result?.exitCode, 3);
  assert.deepEqual(
    dead.attempts.map((a) => [a.number, a.outcome, a.exitCode]),
    [[1, "failed", 3], [2, "failed", 3], [3, "failed", 3]],
  );
  assert.equal(dead.jobId, job.jobId);
});

conformance("a waiting dequeue is woken when a retry's backoff ends", async (h) => {
  const { store } = h;
  await enqueueRetrying(store, { maxRetries: 1 });
  const waiting = await fail(store, await dequeueOne(store), 1);
  const woken = store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(10_000),
  });
  await waitOut(h, waiting);
  const jobs = await woken;
  assert.equal(jobs.length, 1);
  assert.equal(jobs[0]!.job.attempt, 2);
});

conformance("each lost lease counts: the third ends the job FAILED, worker lost", async (h) => {
  const { store } = h;
  const job = await enqueue(store);
  for (let n = 1; n <= 3; n++) {
    const leased = await dequeueOne(store, QUEUE, 1_000);
    assert.equal(leased.job.attempt, n);
    await h.advance(1_500);
  }
  const lost = await store.getJob(job.jobId);
  assert.equal(lost.state, JobState.FAILED);
  assert.equal(lost.failureReason, "worker_lost");
  assert.equal(lost.result?.errorMessage, "worker lost 3 times");
  assert.deepEqual(lost.attempts.map((a) => a.outcome), ["lost", "lost", "lost"]);
  assert.deepEqual(await dequeueNow(store), [], "it never comes back");
});

conformance(
  "the attempt list keeps the first attempt and the newest, however many hand-backs",
  async (h) => {
    const { store } = h;
    const job = await enqueueRetrying(store, { maxRetries: 1, minDelayMs: 100, maxDelayMs: 100 });
    // Attempt 1 fails with an error far longer than an entry keeps.
    const first = await dequeueOne(store);
    await store.complete(
      first.taskToken,
      create(JobResultSchema, {
        jobId: job.jobId,
        exitCode: 1,
        errorMessage: "x".repeat(MAX_ERROR_MESSAGE_LENGTH),
      }),
    );
    await waitOut(h, await store.getJob(job.jobId));
    // Then more hand-backs (no budget used) than the list keeps.
    const handBacks = MAX_RECORDED_ATTEMPTS + 5;
    for (let n = 0; n < handBacks; n++) {
      const leased = await dequeueOne(store);
      await store.updateLease(leased.taskToken, QUEUE, 0);
    }
    const last = await dequeueOne(store);
    assert.equal(last.job.attempt, handBacks + 2);
    await store.complete(last.taskToken, result(job.jobId, 0));
    const done = await store.getJob(job.jobId);
    assert.equal(done.state, JobState.COMPLETED, "a long history does not stop the job");
    assert.equal(done.attempts.length, MAX_RECORDED_ATTEMPTS);
    assert.equal(done.attempts[0]!.number, 1, "the first attempt stays");
    assert.ok(done.attempts[0]!.errorMessage.length <= MAX_ATTEMPT_ERROR_LENGTH);
    assert.deepEqual(
      done.attempts.slice(1).map((a) => a.number),
      Array.from(
        { length: MAX_RECORDED_ATTEMPTS - 1 },
        (_, i) => handBacks + 4 - MAX_RECORDED_ATTEMPTS + i,
      ),
      "then the newest, in order",
    );
    assert.equal(done.attempts.at(-1)!.outcome, "completed");
  },
);

conformance(
  "attempt metrics count each decision once: retries, outcomes, dead letters",
  async (h) => {
    const { store } = h;
    const counted: string[] = [];
    installStoreMeter({
      count(name, value, attributes) {
        if (!name.startsWith("airunner.jobs.")) return;
        const label = Object.values(attributes ?? {}).join(",");
        for (let i = 0; i < value; i++) counted.push(label === "" ? name : `${name}{${label}}`);
      },
      record() {},
    });
    try {
      const retried = await enqueueRetrying(store, {
        maxRetries: 1,
        minDelayMs: 100,
        maxDelayMs: 100,
      });
      const first = await dequeueOne(store);
      await fail(store, first, 3);
      // The same completion again is a resend: nothing more is counted.
      await store.complete(first.taskToken, result(retried.jobId, 3));
      await waitOut(h, await store.getJob(retried.jobId));
      await fail(store, await dequeueOne(store), 3);
      const lost = await enqueue(store);
      for (let n = 1; n <= 3; n++) {
        await dequeueOne(store, QUEUE, 1_000);
        await h.advance(1_500);
      }
      assert.equal((await store.getJob(lost.jobId)).failureReason, "worker_lost");
      await store.getJob(lost.jobId); // a read after the end counts nothing
      assert.deepEqual(counted.sort(), [
        "airunner.jobs.attempts.total{failed}",
        "airunner.jobs.attempts.total{failed}",
        "airunner.jobs.attempts.total{lost}",
        "airunner.jobs.attempts.total{lost}",
        "airunner.jobs.attempts.total{lost}",
        "airunner.jobs.exhausted.total{exhausted}",
        "airunner.jobs.exhausted.total{worker_lost}",
        "airunner.jobs.retries.scheduled.total",
      ]);
    } finally {
      installStoreMeter({ count() {}, record() {} });
    }
  },
);

conformance("a retry policy gives lost workers as many attempts as it allows", async (h) => {
  const { store } = h;
  const job = await enqueueRetrying(store, { maxRetries: 3 });
  for (let n = 1; n <= 3; n++) {
    await dequeueOne(store, QUEUE, 1_000);
    await h.advance(1_500);
  }
  assert.equal((await store.getJob(job.jobId)).state, JobState.SCHEDULED, "4 attempts allowed");
  await dequeueOne(store, QUEUE, 1_000);
  await h.advance(1_500);
  assert.equal((await store.getJob(job.jobId)).result?.errorMessage, "worker lost 4 times");
});

conformance("attempts list each lease: worker, times, outcome and event range", async (h) => {
  const { store } = h;
  const job = await enqueueRetrying(store, { maxRetries: 1 });
  const [first] = await store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(5_000),
    workerName: "worker-a",
  });
  const running = await store.getJob(job.jobId);
  assert.equal(running.attempts.length, 1);
  assert.equal(running.attempts[0]!.worker, "worker-a");
  assert.equal(running.attempts[0]!.endedAt, undefined, "still running");
  await store.publishEvents(first!.taskToken, [startEvent(1), outputEvent(2, "x"), endEvent(3, 1)]);
  const waiting = await fail(store, first!, 1);
  await waitOut(h, waiting);
  const [second] = await store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(5_000),
    workerName: "worker-b",
  });
  await store.publishEvents(second!.taskToken, [startEvent(1), endEvent(2, 0)]);
  const done = await fail(store, second!, 0);
  const [a1, a2] = done.attempts;
  assert.deepEqual(
    [a1!.number, a1!.worker, a1!.outcome, a1!.exitCode, a1!.firstSequence, a1!.lastSequence],
    [1, "worker-a", "failed", 1, 1n, 3n],
  );
  // Sequence 4 is the ATTEMPT_END event the store wrote between the attempts.
  assert.deepEqual(
    [a2!.number, a2!.worker, a2!.outcome, a2!.exitCode, a2!.firstSequence, a2!.lastSequence],
    [2, "worker-b", "completed", 0, 5n, 6n],
  );
  assert.ok(a1!.startedAt !== undefined && a1!.endedAt !== undefined);
  const events = await collect(store.streamEvents(job.jobId, streamOptions()));
  const notice = events.find((e) => e.eventType === EventType.ATTEMPT_END);
  assert.equal(notice?.sequence, 4n);
  assert.ok(notice?.eventData.case === "attemptEnd");
  assert.deepEqual(
    [
      notice.eventData.value.attempt,
      notice.eventData.value.exitCode,
      notice.eventData.value.nextAttempt,
    ],
    [1, 1, 2],
  );
  assert.ok(notice.eventData.value.nextNotBefore !== undefined);
});

conformance("a worker cannot publish an ATTEMPT_END event", async ({ store }) => {
  await enqueue(store);
  const leased = await dequeueOne(store);
  const forged = makeEvent(1n, Date.now(), {
    case: "attemptEnd",
    value: create(AttemptEndEventSchema, { attempt: 1, nextAttempt: 2 }),
  });
  await assert.rejects(store.publishEvents(leased.taskToken, [forged]), InvalidEventError);
});

conformance("a cancel during the backoff ends the job CANCELLED, never leased again", async (h) => {
  const { store } = h;
  const job = await enqueueRetrying(store, { maxRetries: 2 });
  const waiting = await fail(store, await dequeueOne(store), 1);
  const cancelled = await store.cancel(job.jobId, "enough");
  assert.equal(cancelled.state, JobState.CANCELLED);
  await waitOut(h, waiting);
  assert.deepEqual(await dequeueNow(store), []);
  assert.equal((await store.getJob(job.jobId)).state, JobState.CANCELLED);
});

conformance("the completion that scheduled a retry, sent again, changes nothing", async (h) => {
  const { store } = h;
  const job = await enqueueRetrying(store, { maxRetries: 2 });
  const leased = await dequeueOne(store);
  assert.equal(await store.complete(leased.taskToken, result(job.jobId, 1)), true);
  const before = await store.getJob(job.jobId);
  assert.equal(await store.complete(leased.taskToken, result(job.jobId, 1)), false);
  const after = await store.getJob(job.jobId);
  assert.deepEqual([after.state, after.notBefore, after.attempts.length], [
    before.state,
    before.notBefore,
    1,
  ]);
});

conformance(
  "redrive puts a dead letter back with a fresh budget, keeping its history",
  async (h) => {
    const { store } = h;
    const job = await enqueueRetrying(store, { maxRetries: 0 });
    // max_retries 0 retries nothing, so its failure is no dead letter.
    assert.equal((await fail(store, await dequeueOne(store), 1)).failureReason, "");
    await assert.rejects(store.redrive(job.jobId), JobNotRedrivableError);
    const dead = await enqueueRetrying(store, { maxRetries: 1 });
    const waiting = await fail(store, await dequeueOne(store), 1);
    await waitOut(h, waiting);
    const exhausted = await fail(store, await dequeueOne(store), 1);
    assert.equal(exhausted.failureReason, "exhausted");
    const back = await store.redrive(dead.jobId);
    assert.equal(back.jobId, dead.jobId);
    assert.equal(back.state, JobState.SCHEDULED);
    assert.equal(back.failureReason, "");
    assert.equal(back.result, undefined);
    assert.equal(back.attempts.length, 2, "its attempts stay");
    const again = await dequeueOne(store);
    assert.equal(again.job.jobId, dead.jobId);
    assert.equal(again.job.attempt, 3);
    const retried = await fail(store, again, 1);
    assert.equal(retried.state, JobState.SCHEDULED, "the fresh budget retries again");
    await assert.rejects(store.redrive(dead.jobId), JobNotRedrivableError, "only dead letters");
    await assert.rejects(store.redrive("01900000-0000-7000-8000-00000000dead"), JobNotFoundError);
  },
);

conformance("a rerun is a new job that keeps rerun_of and every parameter", async ({ store }) => {
  const original = await enqueueRetrying(store, { maxRetries: 2 });
  const { job: rerun } = await store.enqueue({
    requestId: "",
    queue: QUEUE,
    params: create(JobParamsSchema, { ...original.jobParams!, rerunOf: original.jobId }),
    executionConfig,
  });
  assert.notEqual(rerun.jobId, original.jobId);
  const fetched = await store.getJob(rerun.jobId);
  assert.equal(fetched.jobParams?.rerunOf, original.jobId);
  assert.equal(fetched.jobParams?.retry?.maxRetries, 2);
  assert.equal(fetched.attempts.length, 0);
});

// ---------------------------------------------------------------- delayed starts and priorities

async function enqueueWith(
  store: JobStore,
  fields: { delayMs?: number; runAtMs?: number; priority?: number; command?: string },
): Promise<Job> {
  const { job } = await store.enqueue({
    requestId: "",
    queue: QUEUE,
    params: create(JobParamsSchema, {
      command: fields.command ?? "echo",
      delayMs: BigInt(fields.delayMs ?? 0),
      ...(fields.runAtMs === undefined ? {} : { runAt: timestampFromMs(fields.runAtMs) }),
      priority: fields.priority ?? 0,
    }),
    executionConfig,
  });
  return job;
}

conformance("a delayed start waits SCHEDULED until its time, leased no earlier", async (h) => {
  const { store } = h;
  const before = h.now();
  const job = await enqueueWith(store, { delayMs: 5_000 });
  assert.equal(job.state, JobState.SCHEDULED);
  const due = timestampMs(job.notBefore!);
  assert.ok(
    due >= before + 5_000 && due <= h.now() + 5_000,
    "not-before is the enqueue plus the delay",
  );
  const got = await store.getJob(job.jobId);
  assert.equal(timestampMs(got.notBefore!), due, "get shows it");
  assert.equal(got.attempt, 0);
  const listed = await store.listJobs({ page: 1, pageSize: 10, state: JobState.SCHEDULED });
  assert.equal(listed.jobs[0]?.notBefore !== undefined, true, "list shows it");
  assert.deepEqual(await dequeueNow(store), [], "nothing leases it early");
  await h.advance(4_000);
  assert.deepEqual(await dequeueNow(store), [], "still not due");
  await h.advance(2_100);
  const leased = await dequeueOne(store);
  assert.equal(leased.job.jobId, job.jobId);
  assert.equal(leased.job.attempt, 1);
  assert.equal(leased.job.notBefore, undefined, "a running job waits for nothing");
});

conformance("a run_at start waits for its time; one already past runs at once", async (h) => {
  const { store } = h;
  const later = await enqueueWith(store, { runAtMs: h.now() + 3_000 });
  const past = await enqueueWith(store, { runAtMs: h.now() - 30_000 });
  assert.equal(past.notBefore, undefined, "a past time waits for nothing");
  assert.deepEqual((await dequeueNow(store)).map((l) => l.job.jobId), [past.jobId]);
  await h.advance(4_100);
  assert.equal((await dequeueOne(store)).job.jobId, later.jobId);
});

conformance("a delayed job can be cancelled before it starts, and never runs", async (h) => {
  const { store } = h;
  const job = await enqueueWith(store, { delayMs: 2_000 });
  const cancelled = await store.cancel(job.jobId, "not today");
  assert.equal(cancelled.state, JobState.CANCELLED);
  assert.equal(cancelled.attempts.length, 0, "no attempt ran");
  await h.advance(3_100);
  assert.deepEqual(await dequeueNow(store), [], "its time passes with nothing leased");
});

conformance("a waiting dequeue is woken when a delayed start comes due", async (h) => {
  const { store } = h;
  const job = await enqueueWith(store, { delayMs: 1_000 });
  const woken = store.dequeue(QUEUE, {
    maxJobs: 1,
    visibilityTimeoutMs: VISIBILITY_MS,
    signal: AbortSignal.timeout(10_000),
  });
  await h.advance(2_100);
  const jobs = await woken;
  assert.equal(jobs[0]?.job.jobId, job.jobId);
});

conformance(
  "a waiting job of higher priority is leased first; FIFO within a priority",
  async (h) => {
    const { store } = h;
    const low = await enqueueWith(store, { priority: -5 });
    const a = await enqueueWith(store, { priority: 0 });
    const b = await enqueueWith(store, { priority: 0 });
    const urgent = await enqueueWith(store, { priority: 5 });
    const leased: string[] = [];
    for (let n = 0; n < 4; n++) leased.push((await dequeueOne(store)).job.jobId);
    assert.equal(leased[0], urgent.jobId, "the higher priority goes first");
    assert.deepEqual(new Set(leased.slice(1, 3)), new Set([a.jobId, b.jobId]));
    assert.equal(leased[3], low.jobId, "the lower priority goes last");
    if (store.capabilities.redeliversBeforeNewerWork) {
      assert.deepEqual(leased.slice(1, 3), [a.jobId, b.jobId], "FIFO within one priority");
    }
    if (store.capabilities.priorityOrder === "exact") {
      const five = await enqueueWith(store, { priority: 5 });
      const fifty = await enqueueWith(store, { priority: 50 });
      assert.deepEqual(
        [(await dequeueOne(store)).job.jobId, (await dequeueOne(store)).job.jobId],
        [fifty.jobId, five.jobId],
        "every priority is its own step",
      );
    }
  },
);

conformance("a retried job keeps its priority: it goes ahead of lower work once due", async (h) => {
  const { store } = h;
  const urgent = await enqueueWith(store, { priority: 3 });
  const first = await dequeueOne(store, QUEUE, 1_000);
  assert.equal(first.job.jobId, urgent.jobId);
  const normal = await enqueueWith(store, {});
  await h.advance(1_500); // the lease runs out: the job waits again
  const next = await dequeueOne(store);
  assert.equal(next.job.jobId, urgent.jobId, "ahead of the normal job enqueued meanwhile");
  assert.equal(next.job.attempt, 2);
  assert.equal((await dequeueOne(store)).job.jobId, normal.jobId);
});

conformance("a new job whose run_at is long past is refused, and nothing is stored", async (h) => {
  const { store } = h;
  await assert.rejects(
    store.enqueue({
      requestId: "",
      queue: QUEUE,
      params: create(JobParamsSchema, { command: "x", runAt: timestampFromMs(h.now() - 120_000) }),
      executionConfig,
    }),
    (e: unknown) => e instanceof InvalidArgumentError && e.field === "job_params.run_at",
  );
  assert.deepEqual((await store.listJobs({ page: 1, pageSize: 10 })).jobs, []);
});

conformance(
  "a handed-back or redriven job keeps its priority: it goes ahead of new normal work",
  async (h) => {
    const { store } = h;
    const urgent = await enqueueWith(store, { priority: 5 });
    const leased = await dequeueOne(store);
    assert.equal(leased.job.jobId, urgent.jobId);
    const normal = await enqueueWith(store, {});
    await store.updateLease(leased.taskToken, QUEUE, 0); // handed back
    assert.equal((await dequeueOne(store)).job.jobId, urgent.jobId, "handed back: still first");
    assert.equal((await dequeueOne(store)).job.jobId, normal.jobId);

    // A dead letter of priority 5, redriven behind waiting normal work, goes first.
    const { job: doomed } = await store.enqueue({
      requestId: "",
      queue: QUEUE,
      params: create(JobParamsSchema, {
        command: "false",
        priority: 5,
        retry: { maxRetries: 0 },
      }),
      executionConfig,
    });
    const lost = await dequeueOne(store, QUEUE, 1_000);
    assert.equal(lost.job.jobId, doomed.jobId);
    for (let n = 2; n <= 3; n++) {
      await h.advance(1_500);
      assert.equal((await dequeueOne(store, QUEUE, 1_000)).job.attempt, n);
    }
    await h.advance(1_500);
    assert.equal((await store.getJob(doomed.jobId)).failureReason, "worker_lost");
    const waiting = await enqueueWith(store, {});
    await store.redrive(doomed.jobId);
    assert.equal(
      (await dequeueOne(store)).job.jobId,
      doomed.jobId,
      "redriven: ahead of priority 0",
    );
    assert.equal((await dequeueOne(store)).job.jobId, waiting.jobId);
  },
);

conformance("a schedule's firing makes one job, however many schedulers enqueue it", async (h) => {
  const { store } = h;
  const timing = { cron: "*/2 * * * * *", timeZone: "" };
  const [firing] = nextFirings(timing, h.now(), 1);
  const fire = () =>
    store.enqueue({
      requestId: firingRequestId("every-2s", firing!),
      queue: QUEUE,
      params: create(JobParamsSchema, { command: "tick", metadata: { schedule: "every-2s" } }),
      executionConfig,
    });
  // Three schedulers (orchestrators on the same tables) fire it at once, and one again later.
  const results = await Promise.all([fire(), fire(), fire()]);
  const again = await fire();
  const ids = new Set([...results, again].map((r) => r.job.jobId));
  assert.equal(ids.size, 1, "one job for the firing");
  assert.equal([...results, again].filter((r) => r.created).length, 1);
  const listed = await store.listJobs({ page: 1, pageSize: 10 });
  assert.equal(listed.jobs.length, 1);
  assert.equal(listed.jobs[0]!.jobParams?.metadata.schedule, "every-2s");
});

registerScheduleCases(conformance);
registerDependencyCases(conformance);
