import assert from "node:assert/strict";
import { PutItemCommand } from "@aws-sdk/client-dynamodb";
import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { create } from "@bufbuild/protobuf";
import {
  ExecutionConfigSchema,
  JobParamsSchema,
  JobResultSchema,
  JobState,
  ProcessStartEventSchema,
} from "../../gen/job/v1/job_pb.ts";
import { createAwsClients } from "../../src/store/aws/aws_clients.ts";
import { SDK_MAX_ATTEMPTS } from "../../src/store/aws/aws_errors.ts";
import { AwsJobStore, type AwsJobStoreOptions } from "../../src/store/aws/aws_store.ts";
import { idempotencyItem, messageBody } from "../../src/store/aws/job_item.ts";
import {
  JobNotFoundError,
  LeaseLostError,
  QueueNotFoundError,
  ThrottledError,
} from "../../src/store/errors.ts";
import { makeEvent } from "../../src/store/event_sequencing.ts";
import { TaskTokenCodec } from "../../src/store/task_token.ts";
import { emulatorClients, freshAwsResources, startAwsEmulators } from "../support/aws.ts";
import { defineStoreConformance } from "./conformance.ts";

// One pair of stand-ins for the module; each case gets its own tables and queues.
const emulators = await startAwsEmulators();
const clients = emulatorClients(emulators);

defineStoreConformance("aws", async () => {
  const { store } = await awsStore();
  return {
    store,
    // SQS and DynamoDB keep real time.
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    close: () => store.close(),
  };
});

// ------------------------------------------------ AWS-specific behaviour

async function awsStore(overrides: Partial<AwsJobStoreOptions> = {}) {
  const names = await freshAwsResources(clients);
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
