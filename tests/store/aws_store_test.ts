import assert from "node:assert/strict";
import {
  type BatchWriteItemCommandInput,
  type BatchWriteItemCommandOutput,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type SendMessageBatchCommandInput,
  type SendMessageBatchCommandOutput,
  SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { create } from "@bufbuild/protobuf";
import {
  ExecutionConfigSchema,
  type JobEvent,
  JobParamsSchema,
  JobResultSchema,
  JobState,
  OutputBatchEventSchema,
  ProcessEndEventSchema,
  ProcessStartEventSchema,
  RetryPolicySchema,
  ScheduleSchema,
  StreamType,
} from "../../gen/job/v1/job_pb.ts";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { createAwsClients } from "../../src/store/aws/aws_clients.ts";
import { SDK_MAX_ATTEMPTS } from "../../src/store/aws/aws_errors.ts";
import { AwsJobStore, type AwsJobStoreOptions } from "../../src/store/aws/aws_store.ts";
import { idempotencyItem, messageBody } from "../../src/store/aws/job_item.ts";
import { MAX_RECEIVE_COUNT, provisionAwsResources } from "../../src/store/aws/provision.ts";
import { MAX_RETRIES } from "../../src/protocol/limits.ts";
import {
  BackendUnavailableError,
  JobNotFoundError,
  LeaseLostError,
  QueueNotFoundError,
  ScheduleExistsError,
  ScheduleNotFoundError,
  ThrottledError,
} from "../../src/store/errors.ts";
import type { JobStore, LeasedJob } from "../../src/store/job_store.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { SqliteJobStore } from "../../src/store/sqlite/sqlite_store.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { lastSequenceOf } from "../../src/protocol/event_position.ts";
import { TaskTokenCodec } from "../../src/store/task_token.ts";
import { emulatorClients, freshAwsResources, startAwsEmulators } from "../support/aws.ts";
import { defineStoreConformance } from "./conformance.ts";
import { storedEvents } from "../support/stored_events.ts";

// One pair of stand-ins for the module; each case gets its own tables and queues.
const emulators = await startAwsEmulators();
const clients = emulatorClients(emulators);

defineStoreConformance("aws", async (options) => {
  // The dependency cases use a queue of their own.
  const { store } = await awsStore(options, true, ["default", "other", "deps"]);
  return {
    store,
    // SQS and DynamoDB keep real time.
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
    close: () => store.close(),
  };
});

// ------------------------------------------------ AWS-specific behaviour

/** A store on fresh tables and queues ("default" and "other"; with `bands`, their band queues too). */
async function awsStore(
  overrides: Partial<AwsJobStoreOptions> = {},
  bands = true,
  queues: readonly string[] = ["default", "other"],
) {
  const names = await freshAwsResources(clients, queues, bands);
  const store = new AwsJobStore({
    dynamodb: clients.dynamodb,
    sqs: clients.sqs,
    ...names,
    queueUrls: new Map(),
    tokenCodec: TaskTokenCodec.withRandomSecret(),
    ...overrides,
  });
  return { store, names };
}

const jobInput = (queue = "default", requestId = "") => ({
  requestId,
  queue,
  params: create(JobParamsSchema, { command: "true" }),
  executionConfig: create(ExecutionConfigSchema, {}),
});

const now = (ms = 5_000) => ({
  maxJobs: 10,
  visibilityTimeoutMs: 30_000,
  signal: AbortSignal.timeout(ms),
});

Deno.test("aws store: an unknown queue is refused before anything is written", async () => {
  const { store } = await awsStore();
  try {
    await assert.rejects(store.enqueue(jobInput("nowhere")), QueueNotFoundError);
    await assert.rejects(store.enqueue(jobInput("nowhere")), /orchestrator init/);
    assert.deepEqual((await store.listJobs({ page: 1, pageSize: 10 })).jobs, []);
  } finally {
    await store.close();
  }
});

Deno.test("aws store: messages for finished, unknown or foreign jobs are deleted on receipt", async () => {
  const { store, names } = await awsStore();
  try {
    const { job } = await store.enqueue(jobInput());
    const [leased] = await store.dequeue("default", now());
    await store.complete(
      leased!.taskToken,
      create(JobResultSchema, { jobId: job.jobId, success: true }),
    );
    const { QueueUrl } = await clients.sqs.send(
      new GetQueueUrlCommand({ QueueName: `${names.queuePrefix}default` }),
    );
    // A duplicate of the finished job's message, and a body that is not ours.
    for (const body of [messageBody(job.jobId, "default", 0), "not json"]) {
      await clients.sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: body }));
    }
    assert.deepEqual(await store.dequeue("default", now(1_500)), []);
    const left = await clients.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    assert.equal(left.Attributes?.ApproximateNumberOfMessages, "0");
    assert.equal(left.Attributes?.ApproximateNumberOfMessagesNotVisible, "0");
  } finally {
    await store.close();
  }
});

Deno.test("aws store: a retried idempotent enqueue repairs one that died before its job was written", async () => {
  const { store, names } = await awsStore();
  try {
    // What a crash between claiming the request_id and writing the job leaves.
    const orphanId = "01890a5d-ac96-774b-bcce-b302099a8057";
    const input = jobInput("default", "deploy-42");
    await clients.dynamodb.send(
      new PutItemCommand({
        TableName: names.jobsTable,
        Item: idempotencyItem("deploy-42", orphanId, "default", input.params, Date.now()),
      }),
    );
    const retried = await store.enqueue(input);
    assert.equal(retried.job.jobId, orphanId);
    const [leased] = await store.dequeue("default", now());
    assert.equal(leased?.job.jobId, orphanId);
    assert.equal((await store.enqueue(input)).job.jobId, orphanId, "still idempotent");
  } finally {
    await store.close();
  }
});

Deno.test("aws store: jobs and events past their TTL are gone on read", async () => {
  const { store } = await awsStore({ eventsTtlMs: 1_000 });
  try {
    const { job } = await store.enqueue(jobInput());
    const [leased] = await store.dequeue("default", now());
    await store.complete(
      leased!.taskToken,
      create(JobResultSchema, { jobId: job.jobId, success: true }),
    );
    assert.equal((await store.getJob(job.jobId)).state, JobState.COMPLETED);
    // dynalite never deletes expired items; the store must not show them.
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    await assert.rejects(store.getJob(job.jobId), JobNotFoundError);
    assert.deepEqual((await store.listJobs({ page: 1, pageSize: 10 })).jobs, []);
  } finally {
    await store.close();
  }
});

Deno.test("aws store: throttling is retried with backoff, then refused as ThrottledError", async () => {
  // A DynamoDB endpoint that throttles every call.
  let calls = 0;
  await using throttling = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      calls++;
      await req.body?.cancel();
      return new Response(
        JSON.stringify({
          __type: "com.amazonaws.dynamodb.v20120810#ThrottlingException",
          message: "slow down",
        }),
        { status: 400, headers: { "content-type": "application/x-amz-json-1.0" } },
      );
    },
  );
  const throttled = createAwsClients({
    region: "us-east-1",
    dynamodbEndpoint: `http://127.0.0.1:${throttling.addr.port}`,
    sqsEndpoint: emulators.sqsEndpoint,
  });
  const store = new AwsJobStore({
    dynamodb: throttled.dynamodb,
    sqs: throttled.sqs,
    jobsTable: "jobs",
    eventsTable: "events",
    queueUrls: new Map(),
    queuePrefix: "none-",
    tokenCodec: TaskTokenCodec.withRandomSecret(),
    onClose: () => throttled.destroy(),
  });
  try {
    const started = performance.now();
    await assert.rejects(store.getJob("01890a5d-ac96-774b-bcce-b302099a8057"), ThrottledError);
    assert.equal(calls, SDK_MAX_ATTEMPTS, "the SDK tried again before giving up");
    assert.ok(performance.now() - started > 100, "with backoff between tries");
  } finally {
    await store.close();
    await throttling.shutdown();
  }
});

Deno.test("aws store: a stale publish held up past its lease cannot displace the next attempt's events", async () => {
  // A DynamoDB client for worker A whose next Query waits until released:
  // A passes its lease check, then stalls while B takes the job over.
  const aClients = createAwsClients({
    region: "us-east-1",
    dynamodbEndpoint: emulators.dynamodbEndpoint,
    sqsEndpoint: emulators.sqsEndpoint,
  });
  let gate: Promise<void> | undefined;
  let release = () => {};
  aClients.dynamodb.middlewareStack.add((next, context) => async (args) => {
    if (gate !== undefined && context.commandName === "QueryCommand") {
      const waiting = gate;
      gate = undefined;
      await waiting;
    }
    return await next(args);
  }, { step: "initialize", name: "testGate" });
  const { store: b, names } = await awsStore();
  const codec = TaskTokenCodec.withRandomSecret();
  const storeA = new AwsJobStore({
    dynamodb: aClients.dynamodb,
    sqs: aClients.sqs,
    ...names,
    queueUrls: new Map(),
    tokenCodec: codec,
    onClose: () => aClients.destroy(),
  });
  const storeB = new AwsJobStore({
    dynamodb: clients.dynamodb,
    sqs: clients.sqs,
    ...names,
    queueUrls: new Map(),
    tokenCodec: codec,
  });
  const start = (pid: number) =>
    makeEvent(1n, Date.now(), {
      case: "processStart",
      value: create(ProcessStartEventSchema, { pid }),
    });
  try {
    const { job } = await storeA.enqueue(jobInput());
    const [leasedA] = await storeA.dequeue("default", { ...now(), visibilityTimeoutMs: 1_000 });
    gate = new Promise((resolve) => release = resolve);
    const stale = storeA.publishEvents(leasedA!.taskToken, [start(111)]);
    const [leasedB] = await storeB.dequeue("default", now(10_000));
    assert.equal(leasedB?.job.attempt, 2);
    release();
    await assert.rejects(stale, LeaseLostError, "the late write is fenced off");
    assert.equal(await storeB.publishEvents(leasedB!.taskToken, [start(222)]), 1);
    await storeB.complete(
      leasedB!.taskToken,
      create(JobResultSchema, { jobId: job.jobId, success: true }),
    );
    const pids: number[] = [];
    for await (
      const event of storeB.streamEvents(job.jobId, {
        fromSequence: 0n,
        fromTimestampMs: 0,
        eventTypes: new Set(),
        signal: AbortSignal.timeout(5_000),
      })
    ) {
      if (event.eventData.case === "processStart") pids.push(event.eventData.value.pid);
    }
    assert.deepEqual(pids, [222]);
  } finally {
    release();
    await storeA.close();
    await storeB.close();
    await b.close();
  }
});

Deno.test("aws store: retrying a request_id whose job expired leaves a job that exists", async () => {
  const { store } = await awsStore({ eventsTtlMs: 1_000 });
  try {
    const input = jobInput("default", "nightly-1");
    const first = await store.enqueue(input);
    const [leased] = await store.dequeue("default", now());
    await store.complete(
      leased!.taskToken,
      create(JobResultSchema, { jobId: first.job.jobId, success: true }),
    );
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    // Within a minute of the claim, a missing job means a half-done enqueue: same id.
    const retried = await store.enqueue(input);
    assert.equal(retried.job.jobId, first.job.jobId);
    assert.equal((await store.getJob(retried.job.jobId)).state, JobState.SCHEDULED, "it exists");
  } finally {
    await store.close();
  }
});

// ------------------------------------------------ batches

/** Leases jobs of `queue` until `expected` are leased (or 20 s pass). */
async function leaseAll(store: JobStore, queue: string, expected: number): Promise<LeasedJob[]> {
  const leased: LeasedJob[] = [];
  const deadline = Date.now() + 20_000;
  while (leased.length < expected && Date.now() < deadline) {
    leased.push(
      ...await store.dequeue(queue, {
        maxJobs: 10,
        visibilityTimeoutMs: 60_000,
        signal: AbortSignal.timeout(10_000),
        maxWaitMs: 2_000,
      }),
    );
  }
  return leased;
}

Deno.test("aws store: enqueueBatch answers each of 60 jobs in order, and each is dequeued once", async () => {
  const { store } = await awsStore();
  try {
    const inputs = Array.from({ length: 60 }, (_, i) => ({
      ...jobInput(
        i === 17 ? "nowhere" : i % 2 === 0 ? "default" : "other",
        i % 3 === 0 ? `req-${i}` : "",
      ),
      params: create(JobParamsSchema, { command: "echo", args: [String(i)] }),
    }));
    const outcomes = await store.enqueueBatch(inputs);
    assert.equal(outcomes.length, 60);
    const ids = new Map<string, number>();
    outcomes.forEach((outcome, i) => {
      if (i === 17) {
        assert.ok(!outcome.ok && outcome.error instanceof QueueNotFoundError, `item ${i}`);
        return;
      }
      assert.ok(outcome.ok, `item ${i}: ${outcome.ok ? "" : outcome.error}`);
      const { job, created } = outcome.value;
      assert.ok(created);
      assert.equal(job.queue, inputs[i]!.queue, `item ${i}'s job`);
      assert.deepEqual(job.jobParams?.args, [String(i)], `item ${i}'s job`);
      assert.equal(job.state, JobState.SCHEDULED);
      ids.set(job.jobId, i);
    });
    assert.equal(ids.size, 59, "distinct jobs");
    // The unknown queue's item wrote nothing.
    assert.equal((await store.listJobs({ page: 1, pageSize: 100 })).jobs.length, 59);

    // Sent again, the idempotent items answer with their jobs and create none.
    const again = await store.enqueueBatch(inputs.filter((input) => input.requestId !== ""));
    for (const outcome of again) {
      assert.ok(outcome.ok && !outcome.value.created && ids.has(outcome.value.job.jobId));
    }

    for (const queue of ["default", "other"]) {
      const expected = [...ids.values()].filter((i) => inputs[i]!.queue === queue).length;
      const leased = await leaseAll(store, queue, expected);
      const leasedIds = leased.map((l) => l.job.jobId);
      assert.equal(new Set(leasedIds).size, leasedIds.length, `${queue}: no job leased twice`);
      assert.equal(leasedIds.length, expected, `${queue}: every job leased`);
      for (const id of leasedIds) assert.equal(inputs[ids.get(id)!]!.queue, queue);
      assert.deepEqual(
        await store.dequeue(queue, { ...now(), maxWaitMs: 1_500 }),
        [],
        `${queue}: nothing left`,
      );
    }
  } finally {
    await store.close();
  }
});

Deno.test("aws store: enqueueBatch retries the items BatchWriteItem leaves unprocessed", async () => {
  // A client whose first BatchWriteItem writes half its items and hands the
  // other half back as UnprocessedItems, as DynamoDB does when throttled.
  const flaky = createAwsClients({
    region: "us-east-1",
    dynamodbEndpoint: emulators.dynamodbEndpoint,
    sqsEndpoint: emulators.sqsEndpoint,
  });
  const batchWrites: number[] = [];
  let handedBack: string[] = [];
  let retried: string[] = [];
  flaky.dynamodb.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName !== "BatchWriteItemCommand") return await next(args);
    const input = args.input as BatchWriteItemCommandInput;
    const [table, requests] = Object.entries(input.RequestItems ?? {})[0]!;
    const jobIds = requests.map((r) => r.PutRequest?.Item?.job_id?.S ?? "");
    batchWrites.push(requests.length);
    if (batchWrites.length === 2) retried = jobIds;
    if (batchWrites.length > 1) return await next(args);
    const half = Math.floor(requests.length / 2);
    handedBack = jobIds.slice(half);
    const result = await next({
      ...args,
      input: { ...input, RequestItems: { [table]: requests.slice(0, half) } },
    });
    const output = result.output as BatchWriteItemCommandOutput;
    output.UnprocessedItems = { [table]: requests.slice(half) };
    return result;
  }, { step: "initialize", name: "testUnprocessed" });
  const { store } = await awsStore({ dynamodb: flaky.dynamodb, onClose: () => flaky.destroy() });
  try {
    const outcomes = await store.enqueueBatch(Array.from({ length: 20 }, () => jobInput()));
    const jobIds = outcomes.map((outcome) => {
      assert.ok(outcome.ok, outcome.ok ? "" : String(outcome.error));
      return outcome.value.job.jobId;
    });
    assert.deepEqual(batchWrites, [20, 10], "one call, then one retry of the unprocessed half");
    assert.deepEqual(retried, handedBack);
    for (const jobId of jobIds) {
      assert.equal((await store.getJob(jobId)).state, JobState.SCHEDULED, `${jobId} exists`);
    }
    const leased = await leaseAll(store, "default", 20);
    assert.deepEqual(leased.map((l) => l.job.jobId).sort(), [...jobIds].sort());
  } finally {
    await store.close();
  }
});

Deno.test("aws store: enqueueBatch resends retryable SendMessageBatch failures and writes no job for the rest", async () => {
  // A client whose first SendMessageBatch leaves out its first two entries,
  // reporting the first as SQS's fault (retryable) and the second as the
  // request's (not).
  const flaky = createAwsClients({
    region: "us-east-1",
    dynamodbEndpoint: emulators.dynamodbEndpoint,
    sqsEndpoint: emulators.sqsEndpoint,
  });
  const sends: number[] = [];
  flaky.sqs.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName !== "SendMessageBatchCommand") return await next(args);
    const input = args.input as SendMessageBatchCommandInput;
    const entries = input.Entries ?? [];
    sends.push(entries.length);
    if (sends.length > 1) return await next(args);
    const result = await next({ ...args, input: { ...input, Entries: entries.slice(2) } });
    const output = result.output as SendMessageBatchCommandOutput;
    output.Failed = [
      { Id: entries[0]!.Id, SenderFault: false, Code: "InternalError", Message: "try again" },
      { Id: entries[1]!.Id, SenderFault: true, Code: "InvalidMessageContents", Message: "no" },
    ];
    return result;
  }, { step: "initialize", name: "testFailedEntries" });
  const { store } = await awsStore({ sqs: flaky.sqs, onClose: () => flaky.destroy() });
  try {
    const outcomes = await store.enqueueBatch(Array.from({ length: 5 }, () => jobInput()));
    assert.deepEqual(sends, [5, 1], "one call, then the retryable entry again");
    assert.deepEqual(outcomes.map((o) => o.ok), [true, false, true, true, true]);
    assert.ok(!outcomes[1]!.ok && outcomes[1]!.error instanceof BackendUnavailableError);
    assert.equal((await store.listJobs({ page: 1, pageSize: 10 })).jobs.length, 4);
    assert.equal((await leaseAll(store, "default", 4)).length, 4);
  } finally {
    await store.close();
  }
});

Deno.test("aws store: an item DynamoDB refuses fails alone in enqueueBatch", async () => {
  const { store } = await awsStore();
  try {
    // Over DynamoDB's 400 KB item limit: BatchWriteItem refuses the whole call.
    const huge = {
      ...jobInput(),
      params: create(JobParamsSchema, { command: "echo", args: ["x".repeat(450 * 1024)] }),
    };
    const outcomes = await store.enqueueBatch([jobInput(), huge, jobInput()]);
    assert.deepEqual(outcomes.map((o) => o.ok), [true, false, true]);
    assert.ok(!outcomes[1]!.ok && outcomes[1]!.error instanceof BackendUnavailableError);
    assert.equal((await store.listJobs({ page: 1, pageSize: 10 })).jobs.length, 2);
  } finally {
    await store.close();
  }
});

Deno.test("aws store: completeBatch completes valid tokens, refuses stale ones, accepts resends", async () => {
  const { store, names } = await awsStore();
  try {
    const enqueued = await store.enqueueBatch(Array.from({ length: 4 }, () => jobInput()));
    const [a, b, c, d] = enqueued.map((outcome) => {
      assert.ok(outcome.ok);
      return outcome.value.job.jobId;
    });
    const leased = await leaseAll(store, "default", 4);
    const token = (jobId: string | undefined) =>
      leased.find((l) => l.job.jobId === jobId)!.taskToken;
    const result = (jobId: string | undefined, success = true, errorMessage = "") =>
      create(JobResultSchema, { jobId: jobId!, success, exitCode: success ? 0 : 1, errorMessage });

    // A finished earlier; B was handed back and leased again, so its first token is stale.
    await store.complete(token(a), result(a));
    const finishedA = await store.getJob(a!);
    await store.updateLease(token(b), "default", 0);
    const [b2] = await leaseAll(store, "default", 1);
    assert.equal(b2?.job.jobId, b);
    assert.equal(b2?.job.attempt, 2);

    const outcomes = await store.completeBatch([
      { taskToken: token(c), result: result(c) },
      { taskToken: token(b), result: result(b) },
      { taskToken: token(a), result: result(a) },
      { taskToken: token(d), result: result(d, false, "exit 1") },
      { taskToken: token(a), result: result(a, false, "something else") },
      { taskToken: token(c), result: result(c) },
    ]);
    assert.deepEqual(outcomes.map((o) => o.ok), [true, false, true, true, false, true]);
    assert.ok(!outcomes[1]!.ok && outcomes[1]!.error instanceof LeaseLostError, "stale token");
    assert.ok(!outcomes[4]!.ok && outcomes[4]!.error instanceof LeaseLostError, "other result");

    assert.equal((await store.getJob(c!)).state, JobState.COMPLETED);
    assert.equal((await store.getJob(d!)).state, JobState.FAILED);
    assert.equal((await store.getJob(d!)).result?.errorMessage, "exit 1");
    assert.deepEqual(await store.getJob(a!), finishedA, "the resend changed nothing");
    const running = await store.getJob(b!);
    assert.equal(running.state, JobState.RUNNING);
    assert.equal(running.attempt, 2);
    // A single resend is accepted too.
    await store.complete(token(a), result(a));

    // Every finished job's message is gone; B's is in flight under its lease.
    const { QueueUrl } = await clients.sqs.send(
      new GetQueueUrlCommand({ QueueName: `${names.queuePrefix}default` }),
    );
    const left = await clients.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    assert.equal(left.Attributes?.ApproximateNumberOfMessages, "0");
    assert.equal(left.Attributes?.ApproximateNumberOfMessagesNotVisible, "1");
  } finally {
    await store.close();
  }
});

// ------------------------------------------------ output cap, cut short

/** A store on its own DynamoDB client, whose `nth` next call of `command` fails once armed. */
async function storeFailingOnce(overrides: Partial<AwsJobStoreOptions> = {}) {
  const own = createAwsClients({
    region: "us-east-1",
    dynamodbEndpoint: emulators.dynamodbEndpoint,
    sqsEndpoint: emulators.sqsEndpoint,
  });
  let armed: { command: string; calls: number } | undefined;
  own.dynamodb.middlewareStack.add((next, context) => async (args) => {
    if (armed !== undefined && context.commandName === armed.command && --armed.calls === 0) {
      armed = undefined;
      throw new Error("injected: the server died here");
    }
    return await next(args);
  }, { step: "initialize", name: "failOnce" });
  const names = await freshAwsResources(clients);
  const store = new AwsJobStore({
    dynamodb: own.dynamodb,
    sqs: own.sqs,
    ...names,
    queueUrls: new Map(),
    tokenCodec: TaskTokenCodec.withRandomSecret(),
    onClose: () => own.destroy(),
    ...overrides,
  });
  return {
    store,
    failNext: (command: string, nth = 1) => armed = { command, calls: nth },
  };
}

const textOf = (events: JobEvent[], stream: StreamType) =>
  events.flatMap((e) =>
    e.eventData.case === "outputBatch"
      ? e.eventData.value.outputs.filter((o) => o.streamType === stream).map((o) =>
        new TextDecoder().decode(o.output)
      )
      : []
  ).join("");

const batchOf = (sequence: number, text: string) =>
  makeEvent(BigInt(sequence), Date.now(), {
    case: "outputBatch",
    value: create(OutputBatchEventSchema, {
      outputs: [{ output: new TextEncoder().encode(text), streamType: StreamType.STDOUT }],
      startSequence: BigInt(sequence),
      endSequence: BigInt(sequence),
    }),
  });

const endOf = (sequence: number) =>
  makeEvent(BigInt(sequence), Date.now(), {
    case: "processEnd",
    value: create(ProcessEndEventSchema, { exitCode: 0 }),
  });

Deno.test("aws store: a capped publish cut short after some of its events is completed by its retry", async () => {
  const { store, failNext } = await storeFailingOnce({ maxJobOutputBytes: 4 });
  try {
    const { job } = await store.enqueue(jobInput());
    const [leased] = await store.dequeue("default", now());
    const token = leased!.taskToken;
    // The crossing batch (with its marker) is written, the process end is not.
    const publish = [batchOf(1, "abcdef"), batchOf(2, "dropped"), endOf(3)];
    failNext("PutItemCommand", 2);
    await assert.rejects(store.publishEvents(token, publish), /injected/);
    assert.equal(await store.publishEvents(token, publish), 1, "the retry writes the end");
    assert.equal(await store.publishEvents(token, publish), 0, "a resend stores nothing");
    // A publish of dropped output only: the job item's record of it fails once.
    failNext("UpdateItemCommand");
    await assert.rejects(store.publishEvents(token, [batchOf(4, "x")]), /injected/);
    assert.equal(await store.publishEvents(token, [batchOf(4, "x")]), 0);
    // The record lets the worker's next number follow on.
    assert.equal(await store.publishEvents(token, [endOf(5)]), 1);
    await store.complete(token, create(JobResultSchema, { jobId: job.jobId, success: true }));
    const events = await storedEvents(store, job.jobId);
    assert.equal(textOf(events, StreamType.STDOUT), "abcd");
    assert.equal(textOf(events, StreamType.STDERR), "airunner: output truncated after 4 bytes\n");
    assert.deepEqual(events.map((e) => e.eventData.case), [
      "outputBatch",
      "processEnd",
      "processEnd",
    ]);
    assert.deepEqual(events.map((e) => lastSequenceOf(e)), [2n, 3n, 4n]);
  } finally {
    await store.close();
  }
});

Deno.test("aws store: an attempt that reserved numbers but never wrote them does not block the next", async () => {
  const { store, failNext } = await storeFailingOnce();
  try {
    const { job } = await store.enqueue(jobInput());
    const [first] = await store.dequeue("default", { ...now(), visibilityTimeoutMs: 1_000 });
    // Its numbers are reserved on the job item, then its write never lands.
    failNext("PutItemCommand");
    await assert.rejects(store.publishEvents(first!.taskToken, [batchOf(1, "lost")]), /injected/);
    const [second] = await store.dequeue("default", now(10_000));
    assert.equal(second?.job.attempt, 2);
    assert.equal(await store.publishEvents(second!.taskToken, [batchOf(1, "kept"), endOf(2)]), 2);
    await store.complete(
      second!.taskToken,
      create(JobResultSchema, { jobId: job.jobId, success: true }),
    );
    const events = await storedEvents(store, job.jobId);
    assert.equal(textOf(events, StreamType.STDOUT), "kept");
    // The lost attempt's ATTEMPT_END notice takes the number after the reserved one.
    assert.deepEqual(events.map((e) => e.eventData.case), [
      "attemptEnd",
      "outputBatch",
      "processEnd",
    ]);
    assert.deepEqual(events.map((e) => lastSequenceOf(e)), [2n, 3n, 4n]);
  } finally {
    await store.close();
  }
});

// ------------------------------------------------ retries on SQS

Deno.test("aws store: a retry that waits past SQS's longest delay is received early and put back, not leased", async () => {
  // SQS caps delays at 15 minutes; a 1 s cap stands in for it.
  const { store, names } = await awsStore({ sqsMaxDelaySeconds: 1 });
  try {
    const { job } = await store.enqueue({
      ...jobInput(),
      params: create(JobParamsSchema, {
        command: "false",
        retry: create(RetryPolicySchema, { maxRetries: 1, minDelayMs: 4_000n, maxDelayMs: 4_000n }),
      }),
    });
    const [first] = await store.dequeue("default", now());
    await store.complete(
      first!.taskToken,
      create(JobResultSchema, { jobId: job.jobId, success: false, exitCode: 1 }),
    );
    const due = timestampMs((await store.getJob(job.jobId)).notBefore!);
    // Its message shows up after 1 s, 3 s early.
    assert.deepEqual(await store.dequeue("default", { ...now(), maxWaitMs: 2_500 }), []);
    assert.ok(Date.now() < due, "the wait ended before the job was due");
    const { QueueUrl } = await clients.sqs.send(
      new GetQueueUrlCommand({ QueueName: `${names.queuePrefix}default` }),
    );
    const left = await clients.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    assert.equal(left.Attributes?.ApproximateNumberOfMessages, "0");
    assert.equal(left.Attributes?.ApproximateNumberOfMessagesNotVisible, "1", "put back, kept");
    assert.equal((await store.getJob(job.jobId)).state, JobState.SCHEDULED);
    const [second] = await store.dequeue("default", now(10_000));
    assert.ok(Date.now() >= due, "leased once due");
    assert.equal(second?.job.attempt, 2);
  } finally {
    await store.close();
  }
});

// ------------------------------------------------ one SQS message per attempt

/**
 * A store over fresh resources whose queues move a message to their
 * dead-letter queue after `maxReceiveCount` receives (100 for real, fewer
 * here to keep the cases short).
 */
async function storeWithReceiveCount(maxReceiveCount: number) {
  const id = crypto.randomUUID().slice(0, 8);
  const names = { jobsTable: `t${id}-jobs`, eventsTable: `t${id}-events`, queuePrefix: `t${id}-` };
  await provisionAwsResources(clients, {
    jobsTable: names.jobsTable,
    eventsTable: names.eventsTable,
    sqsQueues: [`${names.queuePrefix}default`],
    maxReceiveCount,
  });
  const store = new AwsJobStore({
    dynamodb: clients.dynamodb,
    sqs: clients.sqs,
    ...names,
    queueUrls: new Map(),
    tokenCodec: TaskTokenCodec.withRandomSecret(),
  });
  const messagesIn = async (queueName: string) => {
    const { QueueUrl } = await clients.sqs.send(new GetQueueUrlCommand({ QueueName: queueName }));
    const { Attributes } = await clients.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    return Number(Attributes?.ApproximateNumberOfMessages) +
      Number(Attributes?.ApproximateNumberOfMessagesNotVisible);
  };
  return {
    store,
    /** Messages, visible or in flight, in the queue and in its dead-letter queue. */
    messages: async () => ({
      queue: await messagesIn(`${names.queuePrefix}default`),
      dlq: await messagesIn(`${names.queuePrefix}default-dlq`),
    }),
  };
}

Deno.test("aws store: the receive count is per attempt: MAX_RETRIES + 1 attempts fit under SQS's maxReceiveCount", () => {
  assert.ok(MAX_RETRIES + 1 < MAX_RECEIVE_COUNT);
});

Deno.test("aws store: a job whose leases run out more often than one message may be received ends FAILED worker_lost", async () => {
  // 3 receives per message; max_retries 4 lets its workers be lost 5 times.
  const { store, messages } = await storeWithReceiveCount(3);
  try {
    const { job } = await store.enqueue({
      ...jobInput(),
      params: create(JobParamsSchema, {
        command: "true",
        retry: create(RetryPolicySchema, { maxRetries: 4 }),
      }),
    });
    const attempts: number[] = [];
    const deadline = Date.now() + 40_000;
    while ((await store.getJob(job.jobId)).state !== JobState.FAILED && Date.now() < deadline) {
      // Each lease lasts 1 s, and its worker never comes back.
      const leased = await store.dequeue("default", {
        ...now(10_000),
        visibilityTimeoutMs: 1_000,
        maxWaitMs: 3_000,
      });
      attempts.push(...leased.map((l) => l.job.attempt));
    }
    assert.deepEqual(attempts, [1, 2, 3, 4, 5]);
    const failed = await store.getJob(job.jobId);
    assert.equal(failed.state, JobState.FAILED);
    assert.equal(failed.failureReason, "worker_lost");
    assert.deepEqual(failed.attempts.map((a) => a.outcome), Array(5).fill("lost"));
    assert.deepEqual(await messages(), { queue: 0, dlq: 0 }, "nothing left, nothing dead-lettered");
  } finally {
    await store.close();
  }
});

Deno.test("aws store: a job handed back more often than one message may be received is still leased", async () => {
  const { store, messages } = await storeWithReceiveCount(3);
  try {
    const { job } = await store.enqueue(jobInput());
    for (let attempt = 1; attempt <= 6; attempt++) {
      const [leased] = await store.dequeue("default", now());
      assert.equal(leased?.job.attempt, attempt);
      assert.deepEqual(await store.updateLease(leased!.taskToken, "default", 0), {
        cancelled: false,
      });
    }
    const [last] = await store.dequeue("default", now());
    assert.equal(last?.job.attempt, 7);
    await store.complete(
      last!.taskToken,
      create(JobResultSchema, { jobId: job.jobId, success: true }),
    );
    const done = await store.getJob(job.jobId);
    assert.equal(done.state, JobState.COMPLETED);
    assert.deepEqual(
      done.attempts.map((a) => a.outcome),
      [...Array(6).fill("handed_back"), "completed"],
    );
    assert.deepEqual(await messages(), { queue: 0, dlq: 0 });
  } finally {
    await store.close();
  }
});

// ------------------------------------------------ a cancel racing a lease holder's write

/**
 * A store whose DynamoDB client runs `before` ahead of its next UpdateItem
 * (once armed): to land a cancel between a read and the write decided on it.
 */
async function storeWithHookBeforeUpdate() {
  const own = createAwsClients({
    region: "us-east-1",
    dynamodbEndpoint: emulators.dynamodbEndpoint,
    sqsEndpoint: emulators.sqsEndpoint,
  });
  let before: (() => Promise<unknown>) | undefined;
  own.dynamodb.middlewareStack.add((next, context) => async (args) => {
    if (before !== undefined && context.commandName === "UpdateItemCommand") {
      const hook = before;
      before = undefined;
      await hook();
    }
    return await next(args);
  }, { step: "initialize", name: "beforeUpdate" });
  const names = await freshAwsResources(clients);
  const codec = TaskTokenCodec.withRandomSecret();
  const options = { ...names, queueUrls: new Map(), tokenCodec: codec };
  const store = new AwsJobStore({
    dynamodb: own.dynamodb,
    sqs: own.sqs,
    ...options,
    onClose: () => own.destroy(),
  });
  // Another server, on clients of its own: its calls are not hooked.
  const other = new AwsJobStore({ dynamodb: clients.dynamodb, sqs: clients.sqs, ...options });
  const { QueueUrl } = await clients.sqs.send(
    new GetQueueUrlCommand({ QueueName: `${names.queuePrefix}default` }),
  );
  return {
    store,
    other,
    beforeNextUpdate: (hook: () => Promise<unknown>) => before = hook,
    messages: async () => {
      const { Attributes } = await clients.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl,
          AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        }),
      );
      return Number(Attributes?.ApproximateNumberOfMessages) +
        Number(Attributes?.ApproximateNumberOfMessagesNotVisible);
    },
  };
}

Deno.test("aws store: a cancel between a failed completion's read and its retry write ends the job CANCELLED", async () => {
  const { store, other, beforeNextUpdate, messages } = await storeWithHookBeforeUpdate();
  try {
    const { job } = await store.enqueue({
      ...jobInput(),
      params: create(JobParamsSchema, {
        command: "false",
        retry: create(RetryPolicySchema, { maxRetries: 3, minDelayMs: 60_000n }),
      }),
    });
    const [leased] = await store.dequeue("default", now());
    // The completion has read the job (no cancel yet) when the cancel lands.
    let marked: JobState | undefined;
    beforeNextUpdate(async () => marked = (await other.cancel(job.jobId, "stop")).state);
    assert.equal(
      await store.complete(
        leased!.taskToken,
        create(JobResultSchema, { jobId: job.jobId, success: false, exitCode: 1 }),
      ),
      true,
    );
    assert.equal(marked, JobState.RUNNING, "the cancel found it running and marked it");
    const cancelled = await store.getJob(job.jobId);
    assert.equal(cancelled.state, JobState.CANCELLED);
    assert.equal(cancelled.cancelReason, "stop");
    assert.deepEqual(cancelled.attempts.map((a) => a.outcome), ["cancelled"]);
    assert.equal(await messages(), 0, "no retry was sent, and the lease's message is deleted");
  } finally {
    await store.close();
    await other.close();
  }
});

Deno.test("aws store: a cancel between a hand-back's read and its write ends the job CANCELLED", async () => {
  const { store, other, beforeNextUpdate, messages } = await storeWithHookBeforeUpdate();
  try {
    const { job } = await store.enqueue(jobInput());
    const [leased] = await store.dequeue("default", now());
    beforeNextUpdate(() => other.cancel(job.jobId, "stop"));
    assert.deepEqual(await store.updateLease(leased!.taskToken, "default", 0), { cancelled: true });
    const cancelled = await store.getJob(job.jobId);
    assert.equal(cancelled.state, JobState.CANCELLED);
    assert.deepEqual(cancelled.attempts.map((a) => a.outcome), ["cancelled"]);
    assert.equal(await messages(), 0);
  } finally {
    await store.close();
    await other.close();
  }
});

Deno.test("aws store: without band queues, priority 0 runs as before and another priority names the queue to create", async () => {
  const { store, names } = await awsStore({}, false);
  try {
    const urgent = {
      ...jobInput(),
      params: create(JobParamsSchema, { command: "true", priority: 5 }),
    };
    await assert.rejects(
      store.enqueue(urgent),
      new RegExp(`priorities above 0 need the SQS queue "${names.queuePrefix}default-hi"`),
    );
    await assert.rejects(
      store.enqueueBatch([urgent]).then(([o]) => {
        if (!o!.ok) throw o!.error;
      }),
      QueueNotFoundError,
    );
    const { job } = await store.enqueue(jobInput());
    const [leased] = await store.dequeue("default", now());
    assert.equal(leased?.job.jobId, job.jobId, "the normal band alone serves the queue");
    assert.equal(
      (await store.listJobs({ page: 1, pageSize: 10 })).jobs.length,
      1,
      "nothing else written",
    );
  } finally {
    await store.close();
  }
});

Deno.test("aws store: each band's messages go to its own SQS queue; a retry stays in its band", async () => {
  const { store, names } = await awsStore();
  try {
    const queueOf = async (suffix: string) =>
      (await clients.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: (await clients.sqs.send(
            new GetQueueUrlCommand({ QueueName: `${names.queuePrefix}default${suffix}` }),
          )).QueueUrl,
          AttributeNames: ["ApproximateNumberOfMessages"],
        }),
      )).Attributes?.ApproximateNumberOfMessages;
    for (const priority of [7, 0, -3]) {
      await store.enqueue({
        ...jobInput(),
        params: create(JobParamsSchema, { command: "x", priority }),
      });
    }
    assert.deepEqual(
      [await queueOf("-hi"), await queueOf(""), await queueOf("-lo")],
      ["1", "1", "1"],
    );
    const leased = await store.dequeue("default", { ...now(), maxJobs: 3 });
    assert.equal(leased.length, 1, "one band answers a round");
    assert.equal(leased[0]!.job.jobParams?.priority, 7);
  } finally {
    await store.close();
  }
});

Deno.test("every store: a late repeat of a run_at enqueue answers with its job; a new one long past is refused", async () => {
  const names = await freshAwsResources(clients, ["default"]);
  const stores: [string, FakeClock, JobStore][] = [];
  const dir = await Deno.makeTempDir({ prefix: "airunner-late-repeat-" });
  const clocks = [new FakeClock(), new FakeClock(), new FakeClock()] as const;
  stores.push(["memory", clocks[0], new MemoryJobStore({ clock: clocks[0] })]);
  stores.push([
    "sqlite",
    clocks[1],
    SqliteJobStore.open({
      path: `${dir}/airunner.db`,
      clock: clocks[1],
      tokenCodec: TaskTokenCodec.withRandomSecret(),
    }),
  ]);
  stores.push([
    "aws",
    clocks[2],
    new AwsJobStore({
      dynamodb: clients.dynamodb,
      sqs: clients.sqs,
      ...names,
      queueUrls: new Map(),
      tokenCodec: TaskTokenCodec.withRandomSecret(),
      clock: clocks[2],
    }),
  ]);
  try {
    for (const [name, clock, store] of stores) {
      const request = {
        requestId: `nightly-${name}`,
        queue: "default",
        params: create(JobParamsSchema, {
          command: "nightly",
          runAt: timestampFromMs(clock.now() + 2_000),
        }),
        executionConfig: create(ExecutionConfigSchema, {}),
      };
      const first = await store.enqueue(request);
      await clock.advance(5 * 60_000);
      const repeat = await store.enqueue(request);
      assert.deepEqual([repeat.created, repeat.job.jobId], [false, first.job.jobId], name);
      await assert.rejects(
        store.enqueue({ ...request, requestId: `other-${name}` }),
        /job_params\.run_at: is .*, more than a minute in the past/,
        name,
      );
      assert.equal((await store.listJobs({ page: 1, pageSize: 10 })).jobs.length, 1, name);
    }
  } finally {
    for (const [, , store] of stores) await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aws store: a queue named like a band or dead-letter queue is refused, naming the rule", async () => {
  const { store } = await awsStore();
  try {
    for (const queue of ["build-hi", "build_lo", "default-dlq"]) {
      await assert.rejects(store.enqueue(jobInput(queue)), /queue: ends in -hi, -lo or -dlq/);
    }
    await assert.rejects(store.dequeue("default-hi", now(300)), /queue: ends in -hi, -lo or -dlq/);
  } finally {
    await store.close();
  }
});

// ------------------------------------------------ schedules in the jobs table

Deno.test("aws store: schedule items share the jobs table but are no jobs to any read or listing", async () => {
  const { store } = await awsStore();
  try {
    await store.schedules.put(
      create(ScheduleSchema, {
        name: "nightly",
        cron: "0 3 * * *",
        queue: "default",
        jobParams: create(JobParamsSchema, {
          command: "backup",
          metadata: { schedule: "nightly" },
        }),
      }),
      { replace: false },
    );
    const { job } = await store.enqueue({
      ...jobInput(),
      params: create(JobParamsSchema, { command: "backup", metadata: { schedule: "nightly" } }),
    });
    const ids = async (query: { queue?: string; metadata?: Record<string, string> }) =>
      (await store.listJobs({ page: 1, pageSize: 10, ...query })).jobs.map((j) => j.jobId);
    assert.deepEqual(await ids({}), [job.jobId], "the Scan passes over them");
    assert.deepEqual(await ids({ queue: "default" }), [job.jobId], "they are in no queue index");
    assert.deepEqual(await ids({ metadata: { schedule: "nightly" } }), [job.jobId]);
    for (const id of ["schedule#nightly", "schedules#index"]) {
      await assert.rejects(store.getJob(id), JobNotFoundError, id);
      await assert.rejects(store.redrive(id), JobNotFoundError, id);
      await assert.rejects(store.cancel(id, "stop"), JobNotFoundError, id);
    }
    assert.equal((await store.schedules.get("nightly")).cron, "0 3 * * *", "nothing changed it");
  } finally {
    await store.close();
  }
});

Deno.test("aws store: a schedule create or delete cut short between its two writes is finished by its retry", async () => {
  const own = createAwsClients({
    region: "us-east-1",
    dynamodbEndpoint: emulators.dynamodbEndpoint,
    sqsEndpoint: emulators.sqsEndpoint,
  });
  // The next call of this command fails once, as a lost connection would.
  let failNext: string | undefined;
  own.dynamodb.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName === failNext) {
      failNext = undefined;
      throw Object.assign(new Error("connection reset"), { name: "NetworkingError" });
    }
    return await next(args);
  }, { step: "initialize", name: "failOnce" });
  const names = await freshAwsResources(clients);
  const store = new AwsJobStore({
    dynamodb: own.dynamodb,
    sqs: own.sqs,
    ...names,
    queueUrls: new Map(),
    tokenCodec: TaskTokenCodec.withRandomSecret(),
    onClose: () => own.destroy(),
  });
  const nightly = create(ScheduleSchema, { name: "nightly", cron: "0 3 * * *", queue: "default" });
  const listed = async () => (await store.schedules.list()).map((s) => s.name);
  try {
    // The schedule is written, the index's ADD is lost.
    failNext = "UpdateItemCommand";
    await assert.rejects(store.schedules.put(nightly, { replace: false }), BackendUnavailableError);
    assert.deepEqual(await listed(), [], "written but not listed");
    assert.equal((await store.schedules.get("nightly")).name, "nightly");
    await assert.rejects(store.schedules.put(nightly, { replace: false }), ScheduleExistsError);
    assert.deepEqual(await listed(), ["nightly"], "the retry listed it");

    // The name leaves the index, the DeleteItem is lost.
    failNext = "DeleteItemCommand";
    await assert.rejects(store.schedules.delete("nightly"), BackendUnavailableError);
    assert.deepEqual(await listed(), [], "no longer listed (so no longer fired)");
    await store.schedules.delete("nightly");
    await assert.rejects(store.schedules.get("nightly"), ScheduleNotFoundError);
    await assert.rejects(store.schedules.delete("nightly"), ScheduleNotFoundError);
  } finally {
    await store.close();
  }
});

Deno.test("aws store: a dependent left waiting by a crash after its dependency's finish heals on its next read", async () => {
  const { store, failNext } = await storeFailingOnce();
  const after = (name: string, ids: string[]) => ({
    ...jobInput(),
    params: create(JobParamsSchema, { command: "true", metadata: { name }, after: ids }),
  });
  const short = { ...now(), signal: AbortSignal.timeout(1_500) };
  try {
    const { job: a } = await store.enqueue(jobInput());
    const { job: b } = await store.enqueue(after("b", [a.jobId]));
    const [leased] = await store.dequeue("default", now());
    assert.equal(leased?.job.jobId, a.jobId);
    // The finish is written (UpdateItem 1); the server dies before b's update (UpdateItem 2).
    failNext("UpdateItemCommand", 2);
    assert.equal(
      await store.complete(
        leased!.taskToken,
        create(JobResultSchema, { jobId: a.jobId, success: true }),
      ),
      true,
    );
    assert.deepEqual(await store.dequeue("default", short), [], "b got no message");
    const healed = await store.getJob(b.jobId);
    assert.equal(healed.state, JobState.SCHEDULED);
    assert.deepEqual(healed.waitingFor, [], "its read decided it again");
    const [next] = await store.dequeue("default", now());
    assert.equal(next?.job.jobId, b.jobId, "and sent its message");
    await store.complete(
      next!.taskToken,
      create(JobResultSchema, { jobId: b.jobId, success: true }),
    );

    // The same for a failure: the dependent's read cancels it, and its own dependents follow.
    const { job: x } = await store.enqueue(jobInput());
    const { job: y } = await store.enqueue(after("y", [x.jobId]));
    const { job: z } = await store.enqueue(after("z", [y.jobId]));
    const [leasedX] = await store.dequeue("default", now());
    assert.equal(leasedX?.job.jobId, x.jobId);
    failNext("UpdateItemCommand", 2);
    await store.complete(
      leasedX!.taskToken,
      create(JobResultSchema, { jobId: x.jobId, success: false, exitCode: 3 }),
    );
    assert.deepEqual(
      (await store.getJob(y.jobId)).cancelReason,
      `dependency ${x.jobId} failed with exit 3`,
    );
    const gotZ = await store.getJob(z.jobId);
    assert.equal(gotZ.state, JobState.CANCELLED);
    assert.equal(gotZ.cancelReason, `dependency ${y.jobId} was cancelled`);
  } finally {
    await store.close();
  }
});
