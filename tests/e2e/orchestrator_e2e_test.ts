/**
 * `airunner orchestrator` as people deploy it: two stateless servers on one
 * SQS + DynamoDB deployment (the in-process stand-ins), a worker on one,
 * clients on the other.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  EventType,
  JobState,
  ProcessStartEventSchema,
  PublishJobEventsRequestSchema,
} from "../../gen/job/v1/job_pb.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import {
  type AirunnerProcess,
  freePort,
  runAirunner,
  startAirunner,
  waitForHealth,
} from "../support/airunner_process.ts";
import { emulatorClients, freshAwsResources, startAwsEmulators } from "../support/aws.ts";
import { once } from "../support/streams.ts";

const emulators = await startAwsEmulators();
const awsClients = emulatorClients(emulators);
const SECRET = "e2e-signing-secret-of-at-least-32-bytes!";

async function orchestrator(
  names: { jobsTable: string; eventsTable: string; queuePrefix: string },
) {
  const port = freePort();
  const process = startAirunner([
    "orchestrator",
    "--listen",
    `127.0.0.1:${port}`,
    "--no-auth",
    "--jobs-table",
    names.jobsTable,
    "--events-table",
    names.eventsTable,
    "--queue-prefix",
    names.queuePrefix,
  ], { env: { ...emulators.env, AIRUNNER_TOKEN_SIGNING_SECRET: SECRET } });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(url);
  } catch (error) {
    const { stderr } = await process.stop();
    throw new Error(`orchestrator did not start: ${stderr}`, { cause: error });
  }
  return { process, url };
}

async function stopAll(...processes: AirunnerProcess[]) {
  await Promise.all(processes.map((p) => p.stop()));
}

Deno.test("orchestrator init creates tables and queues once; missing settings are named", async () => {
  const id = crypto.randomUUID().slice(0, 8);
  const args = [
    "orchestrator",
    "init",
    "--jobs-table",
    `i${id}-jobs`,
    "--events-table",
    `i${id}-events`,
    "--queue-prefix",
    `i${id}-`,
  ];
  const first = await runAirunner(args, { env: emulators.env });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, new RegExp(`created DynamoDB table i${id}-jobs`));
  assert.match(first.stderr, new RegExp(`created SQS queue i${id}-default \\(dead letters`));
  assert.match(first.stderr, new RegExp(`created SQS queue i${id}-priority`));
  const again = await runAirunner(args, { env: emulators.env });
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /created/);
  assert.match(again.stderr, new RegExp(`exists: SQS queue i${id}-default`));

  const missing = await runAirunner(["orchestrator", "--no-auth"], {
    env: {
      ...emulators.env,
      AIRUNNER_DYNAMODB_JOBS_TABLE: "",
      AIRUNNER_DYNAMODB_EVENTS_TABLE: "",
      AIRUNNER_TOKEN_SIGNING_SECRET: "short",
    },
  });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--jobs-table \(or AIRUNNER_DYNAMODB_JOBS_TABLE\)/);
  assert.match(missing.stderr, /--events-table \(or AIRUNNER_DYNAMODB_EVENTS_TABLE\)/);
  assert.match(missing.stderr, /AIRUNNER_TOKEN_SIGNING_SECRET: 5 bytes; it must hold at least 32/);

  const noTable = await runAirunner([
    "orchestrator",
    "--no-auth",
    "--listen",
    `127.0.0.1:${freePort()}`,
    "--jobs-table",
    "no-such-table",
    "--events-table",
    `i${id}-events`,
  ], { env: { ...emulators.env, AIRUNNER_TOKEN_SIGNING_SECRET: SECRET } });
  assert.equal(noTable.code, 125);
  assert.match(noTable.stderr, /no-such-table.*orchestrator init/);
});

Deno.test("two orchestrators: enqueued on one, run through the other, followed live on the first", async () => {
  const names = await freshAwsResources(awsClients);
  const a = await orchestrator(names);
  const b = await orchestrator(names);
  const worker = startAirunner(["worker", "--server", b.url]);
  try {
    // The follower is on A; the worker publishes through B.
    const result = await runAirunner([
      "submit",
      "--server",
      a.url,
      "--follow",
      "--",
      "sh",
      "-c",
      "echo one; sleep 1; echo two; exit 7",
    ]);
    assert.equal(result.stdout, "one\ntwo\n", result.stderr);
    assert.equal(result.code, 7);

    // Live, not replayed at the end: "one" reaches A's tail while the job still runs.
    const clients = createAirunnerClients({ serverUrl: a.url });
    const { jobId } = await clients.jobs.enqueueJob({
      queue: "default",
      jobParams: { command: "sh", args: ["-c", "echo early; sleep 2; echo late"] },
    });
    let earlyAt = 0;
    for await (const { event } of clients.events.streamJobEvents({ jobId })) {
      if (event?.eventType === EventType.OUTPUT_BATCH || event?.eventType === EventType.OUTPUT) {
        earlyAt ||= Date.now();
      }
    }
    const { job } = await clients.jobs.getJob({ jobId });
    assert.equal(job?.state, JobState.COMPLETED);
    const finishedAt = timestampDate(job!.result!.completedAt!).getTime();
    assert.ok(
      finishedAt - earlyAt > 1_000,
      `the first line arrived ${finishedAt - earlyAt} ms before the end; expected well before`,
    );
  } finally {
    await stopAll(worker, a.process, b.process);
  }
});

Deno.test("across orchestrators a stale task token is refused after redelivery and a retried publish is stored once", async () => {
  const names = await freshAwsResources(awsClients);
  const a = await orchestrator(names);
  const b = await orchestrator(names);
  try {
    const clientsA = createAirunnerClients({ serverUrl: a.url });
    const clientsB = createAirunnerClients({ serverUrl: b.url });
    const { jobId } = await clientsA.jobs.enqueueJob({
      queue: "default",
      jobParams: { command: "true" },
    });
    const dequeue = async (clients: typeof clientsA, visibilityTimeoutSeconds: number) => {
      for await (
        const res of clients.jobs.dequeueJob({ queue: "default", visibilityTimeoutSeconds })
      ) {
        if (res.job !== undefined) return res;
      }
      throw new Error("no job");
    };
    const stale = await dequeue(clientsA, 1);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const current = await dequeue(clientsB, 60);
    assert.equal(current.job?.attempt, 2);
    await assert.rejects(
      clientsA.jobs.completeJob({
        taskToken: stale.taskToken,
        jobResult: { jobId, success: true },
      }),
      (e: unknown) =>
        ConnectError.from(e).code === Code.FailedPrecondition &&
        /superseded by attempt 2/.test(ConnectError.from(e).rawMessage),
    );
    const start = makeEvent(1n, Date.now(), {
      case: "processStart",
      value: create(ProcessStartEventSchema, { pid: 7 }),
    });
    const publish = (clients: typeof clientsA) =>
      clients.events.publishJobEvents(
        once(
          create(PublishJobEventsRequestSchema, { taskToken: current.taskToken, events: [start] }),
        ),
      );
    await publish(clientsB);
    await publish(clientsA); // the retry, through the other server
    await clientsB.jobs.completeJob({
      taskToken: current.taskToken,
      jobResult: { jobId, success: true },
    });
    const events = [];
    for await (const { event } of clientsA.events.streamJobEvents({ jobId })) events.push(event);
    // 1 is the lost first attempt's ATTEMPT_END; 2 the start, stored once for both publishes.
    assert.deepEqual(events.map((e) => [e?.sequence, e?.eventType]), [
      [1n, EventType.ATTEMPT_END],
      [2n, EventType.PROCESS_START],
    ]);
  } finally {
    await stopAll(a.process, b.process);
  }
});

Deno.test("two orchestrators on the same tables make one job per schedule firing, not two", async () => {
  const names = await freshAwsResources(awsClients);
  const a = await orchestrator(names);
  const b = await orchestrator(names);
  try {
    const add = await runAirunner([
      "schedule",
      "add",
      "tick",
      "--server",
      a.url,
      "--cron",
      "*/2 * * * * *",
      "--overlap",
      "allow",
      "--",
      "true",
    ]);
    assert.equal(add.code, 0, add.stderr);
    const addedMs = Date.now();
    // No worker: the jobs stay queued, so each one counted was made by a firing.
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    const deleted = await runAirunner(["schedule", "delete", "tick", "--server", b.url]);
    assert.equal(deleted.code, 0, deleted.stderr);
    const deletedMs = Date.now();

    const clients = createAirunnerClients({ serverUrl: b.url });
    const { jobs } = await clients.jobs.listJobs({
      metadata: { schedule: "tick" },
      pageSize: 100,
    });
    const firings = jobs.map((j) => Date.parse(j.jobParams!.metadata.schedule_firing!))
      .sort((x, y) => x - y);
    assert.equal(new Set(firings).size, firings.length, `a firing made two jobs: ${firings}`);
    const expected = Math.floor(deletedMs / 2_000) - Math.floor(addedMs / 2_000);
    assert.ok(
      firings.length >= expected - 1 && firings.length <= expected + 1,
      `${firings.length} jobs for ${expected} firings`,
    );
    for (let i = 1; i < firings.length; i++) {
      assert.equal(firings[i]! - firings[i - 1]!, 2_000, "no firing skipped");
    }
  } finally {
    await stopAll(a.process, b.process);
  }
});
