/**
 * Every request limit, over the wire: each violation is answered with
 * InvalidArgument (ResourceExhausted for size) naming the field and the
 * limit, and the store is exactly as it was before.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type JobEvent,
  ProcessStartEventSchema,
  PublishJobEventsRequestSchema,
} from "../../gen/job/v1/job_pb.ts";
import { type AirunnerClients, createAirunnerClients } from "../../src/protocol/transport.ts";
import { startServer } from "../../src/server/http_server.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { memoryLog } from "../support/memory_log.ts";
import { once } from "../support/streams.ts";

const params = { command: "echo", args: ["hi"] };

function startEvent(sequence: bigint): JobEvent {
  return makeEvent(sequence, Date.now(), {
    case: "processStart",
    value: create(ProcessStartEventSchema, { pid: 7 }),
  });
}

/** Everything a client could observe of the store: every job and every event of each. */
async function snapshot(store: MemoryJobStore) {
  const { jobs } = await store.listJobs({ page: 1, pageSize: 1000 });
  const events: Record<string, JobEvent[]> = {};
  for (const job of jobs) {
    const seen: JobEvent[] = [];
    const signal = AbortSignal.timeout(50);
    try {
      for await (
        const event of store.streamEvents(job.jobId, {
          fromSequence: 0n,
          fromTimestampMs: 0,
          eventTypes: new Set(),
          signal,
        })
      ) seen.push(event);
    } catch {
      // The live tail ends when the signal fires.
    }
    events[job.jobId] = seen;
  }
  return { jobs, events };
}

interface Case {
  readonly name: string;
  readonly call: (clients: AirunnerClients, lease: { taskToken: string; jobId: string }) => Promise<
    unknown
  >;
  readonly code?: Code;
  readonly message: RegExp;
}

const repeat = (n: number, s = "x") => s.repeat(n);
const entries = (n: number) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`K${i}`, "v"]));
const enqueue = (jobParams: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
(
  clients: AirunnerClients,
) =>
  clients.jobs.enqueueJob({ queue: "default", jobParams: { ...params, ...jobParams }, ...extra });

const CASES: Case[] = [
  {
    name: "a request over 8 MiB",
    // 150 arguments of 60 KiB each: every field within its limit, the whole over.
    call: enqueue({ args: Array.from({ length: 150 }, () => repeat(60 * 1024)) }),
    code: Code.ResourceExhausted,
    message: /8388608|message size|larger than/i,
  },
  {
    name: "too many args",
    call: enqueue({ args: Array(1025).fill("a") }),
    message: /^job_params\.args: has 1025 entries, more than the limit of 1024/,
  },
  {
    name: "a long arg",
    call: enqueue({ args: [repeat(64 * 1024 + 1)] }),
    message: /^job_params\.args\[0\].*limit of 65536/,
  },
  {
    name: "a long command",
    call: enqueue({ command: repeat(4097) }),
    message: /^job_params\.command.*limit of 4096/,
  },
  {
    name: "too many env entries",
    call: enqueue({ environment: entries(257) }),
    message: /^job_params\.environment: has 257 entries, more than the limit of 256/,
  },
  {
    name: "too many metadata entries",
    call: enqueue({ metadata: entries(257) }),
    message: /^job_params\.metadata: has 257 entries, more than the limit of 256/,
  },
  {
    name: "a long env key",
    call: enqueue({ environment: { [repeat(257, "K")]: "v" } }),
    message: /^job_params\.environment.*limit of 256/,
  },
  {
    name: "a long env value",
    call: enqueue({ environment: { K: repeat(32 * 1024 + 1) } }),
    message: /^job_params\.environment\[K\].*limit of 32768/,
  },
  {
    name: "an env key with =",
    call: enqueue({ environment: { "A=B": "1" } }),
    message: /^job_params\.environment/,
  },
  {
    name: "a long repository",
    call: enqueue({ repository: repeat(2049) }),
    message: /^job_params\.repository.*limit of 2048/,
  },
  {
    name: "a long branch",
    call: enqueue({ branch: repeat(2049) }),
    message: /^job_params\.branch.*limit of 2048/,
  },
  {
    name: "a long commit",
    call: enqueue({ commit: repeat(2049) }),
    message: /^job_params\.commit.*limit of 2048/,
  },
  {
    name: "a long owner",
    call: enqueue({ owner: repeat(2049) }),
    message: /^job_params\.owner.*limit of 2048/,
  },
  {
    name: "a long working directory",
    call: enqueue({ workingDirectory: repeat(2049) }),
    message: /^job_params\.working_directory.*limit of 2048/,
  },
  {
    name: "a NUL in an argument",
    call: enqueue({ args: ["a\0b"] }),
    message: /^job_params\.args\[0\].*NUL/,
  },
  {
    name: "a timeout over 7 days",
    call: enqueue({ timeoutSeconds: 7 * 24 * 3600 + 1 }),
    message: /^job_params\.timeout_seconds.*outside/,
  },
  {
    name: "an unknown process type",
    call: enqueue({ processType: 9 }),
    message: /^job_params\.process_type: .*unknown value 9/,
  },
  {
    name: "a long request id",
    call: enqueue({}, { requestId: repeat(257) }),
    message: /^request_id.*limit of 256/,
  },
  {
    name: "a queue name with a slash",
    call: (c) => c.jobs.enqueueJob({ queue: "a/b", jobParams: params }),
    message: /^queue: may contain only/,
  },
  {
    name: "a queue name over 64",
    call: (c) => c.jobs.enqueueJob({ queue: repeat(65, "q"), jobParams: params }),
    message: /^queue: .*limit of 64/,
  },
  {
    name: "a page size over 1000",
    call: (c) => c.jobs.listJobs({ pageSize: 1001 }),
    message: /^page_size: is 1001, outside 1..1000/,
  },
  {
    name: "a dequeue visibility over 12 hours",
    call: async (c) => {
      for await (
        const _ of c.jobs.dequeueJob({ queue: "default", visibilityTimeoutSeconds: 43_201 })
      ) { /* never reached */ }
    },
    message: /^visibility_timeout_seconds: .*outside .*43200/,
  },
  {
    name: "a lease extension over 12 hours",
    call: (c, lease) =>
      c.jobs.updateJob({
        queue: "default",
        taskToken: lease.taskToken,
        visibilityTimeoutSeconds: 43_201,
      }),
    message: /^visibility_timeout_seconds: .*outside 0..43200/,
  },
  {
    name: "more than 1000 events in one publish",
    call: (c, lease) =>
      c.events.publishJobEvents(once(create(PublishJobEventsRequestSchema, {
        taskToken: lease.taskToken,
        events: Array.from({ length: 1001 }, (_, i) => startEvent(BigInt(i + 2))),
      }))),
    message: /^events: has 1001 events, more than the limit of 1000/,
  },
  {
    name: "a long cancel reason",
    call: (c, lease) => c.jobs.cancelJob({ jobId: lease.jobId, reason: repeat(1025) }),
    message: /^reason: .*limit of 1024/,
  },
  {
    name: "a long error message in a result",
    call: (c, lease) =>
      c.jobs.completeJob({
        taskToken: lease.taskToken,
        jobResult: { jobId: lease.jobId, success: false, errorMessage: repeat(16 * 1024 + 1) },
      }),
    message: /^job_result\.error_message: .*limit of 16384/,
  },
  {
    name: "a task token with a flipped bit",
    call: (c, lease) =>
      c.jobs.completeJob({
        taskToken: `${lease.taskToken.slice(0, -2)}${lease.taskToken.endsWith("A") ? "B" : "A"}A`,
        jobResult: { jobId: lease.jobId, success: true },
      }),
    message: /invalid task token/,
  },
  {
    name: "a truncated task token",
    call: (c, lease) =>
      c.jobs.completeJob({
        taskToken: lease.taskToken.slice(0, 20),
        jobResult: { jobId: lease.jobId, success: true },
      }),
    message: /invalid task token/,
  },
];

Deno.test("every request limit is refused over the wire, naming the field, and changes nothing", async () => {
  const store = new MemoryJobStore();
  const server = await startServer({
    store,
    logger: memoryLog().logger,
    hostname: "127.0.0.1",
    port: 0,
    maxDequeueWaitMs: 200,
  });
  try {
    const clients = createAirunnerClients({ serverUrl: server.url });
    // A running job with one event, and a queued one: state that must survive every case.
    const { jobId } = await clients.jobs.enqueueJob({ queue: "default", jobParams: params });
    let taskToken = "";
    for await (const res of clients.jobs.dequeueJob({ queue: "default" })) {
      taskToken = res.taskToken;
    }
    await clients.events.publishJobEvents(
      once(create(PublishJobEventsRequestSchema, { taskToken, events: [startEvent(1n)] })),
    );
    await clients.jobs.enqueueJob({ queue: "default", jobParams: params });
    const before = await snapshot(store);

    for (const c of CASES) {
      const error = await c.call(clients, { taskToken, jobId }).then(
        () => assert.fail(`${c.name}: accepted`),
        (e: unknown) => ConnectError.from(e),
      );
      assert.equal(
        Code[error.code],
        Code[c.code ?? Code.InvalidArgument],
        `${c.name}: ${error.message}`,
      );
      assert.match(error.rawMessage, c.message, `${c.name}: ${error.rawMessage}`);
      assert.deepEqual(await snapshot(store), before, `${c.name}: the store changed`);
    }
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await server.close();
    await store.close();
  }
});
