import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  EventType,
  type JobEvent,
  JobResultSchema,
  JobState,
  PublishJobEventsRequestSchema,
} from "../../gen/job/v1/job_pb.ts";
import { type AirunnerClients, createAirunnerClients } from "../../src/protocol/transport.ts";
import { startServer } from "../../src/server/http_server.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { type MemoryLog, memoryLog } from "../support/memory_log.ts";
import { once } from "../support/streams.ts";

async function withServer(
  fn: (clients: AirunnerClients, url: string, close: () => Promise<void>) => Promise<void>,
  options: { maxDequeueWaitMs?: number; shutdownTimeoutMs?: number; log?: MemoryLog } = {},
) {
  const store = new MemoryJobStore();
  const { log = memoryLog(), ...serverOptions } = options;
  const server = await startServer({
    store,
    logger: log.logger,
    hostname: "127.0.0.1",
    port: 0,
    ...serverOptions,
  });
  try {
    await fn(createAirunnerClients({ serverUrl: server.url }), server.url, () => server.close());
  } finally {
    await server.close();
    await store.close();
  }
}

async function rejectsWith(promise: Promise<unknown>, code: Code, pattern?: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    const e = ConnectError.from(error);
    assert.equal(Code[e.code], Code[code], e.message);
    if (pattern !== undefined) assert.match(e.rawMessage, pattern);
    return true;
  });
}

const params = { command: "echo", args: ["hi"] };

async function dequeue(clients: AirunnerClients, queue = "default", timeoutMs = 5000) {
  const out = [];
  for await (const res of clients.jobs.dequeueJob({ queue }, { timeoutMs })) out.push(res);
  return out;
}

function publish(clients: AirunnerClients, taskToken: string, events: JobEvent[]) {
  return clients.events.publishJobEvents(
    once(create(PublishJobEventsRequestSchema, { taskToken, events })),
  );
}

Deno.test("GET /health answers ok; unknown paths are 404; gRPC gets a clean 415", async () => {
  await withServer(async (_, url) => {
    const health = await fetch(`${url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });
    const missing = await fetch(`${url}/nope`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const grpc = await fetch(`${url}/job.v1.JobService/ListJobs`, {
      method: "POST",
      headers: { "content-type": "application/grpc" },
      body: new Uint8Array(5),
    });
    assert.equal(grpc.status, 415);
    await grpc.body?.cancel();
  });
});

Deno.test("enqueue, get and list over RPC", async () => {
  await withServer(async (clients) => {
    const { jobId, state } = await clients.jobs.enqueueJob({ queue: "default", jobParams: params });
    assert.equal(state, JobState.SCHEDULED);
    const { job } = await clients.jobs.getJob({ jobId });
    assert.equal(job?.jobParams?.command, "echo");
    assert.equal(job?.queue, "default");
    const list = await clients.jobs.listJobs({});
    assert.equal(list.lastPage, 1);
    assert.deepEqual(list.jobs.map((j) => j.jobId), [jobId]);
  });
});

Deno.test("invalid requests get InvalidArgument naming the field, and change nothing", async () => {
  await withServer(async (clients) => {
    await rejectsWith(
      clients.jobs.enqueueJob({ queue: "", jobParams: params }),
      Code.InvalidArgument,
      /^queue: is required/,
    );
    await rejectsWith(
      clients.jobs.enqueueJob({ queue: "no spaces", jobParams: params }),
      Code.InvalidArgument,
      /^queue: may contain only/,
    );
    await rejectsWith(
      clients.jobs.enqueueJob({ queue: "q".repeat(65), jobParams: params }),
      Code.InvalidArgument,
      /limit of 64/,
    );
    await rejectsWith(
      clients.jobs.enqueueJob({ queue: "default" }),
      Code.InvalidArgument,
      /^job_params: is required/,
    );
    await rejectsWith(
      clients.jobs.enqueueJob({ queue: "default", jobParams: { command: "" } }),
      Code.InvalidArgument,
      /^job_params.command: is required/,
    );
    await rejectsWith(
      clients.jobs.enqueueJob({
        queue: "default",
        jobParams: { command: "x", args: Array.from({ length: 1025 }, () => "a") },
      }),
      Code.InvalidArgument,
      /^job_params.args: has 1025 entries, more than the limit of 1024/,
    );
    await rejectsWith(
      clients.jobs.enqueueJob({
        queue: "default",
        jobParams: { command: "x", timeoutSeconds: -1 },
      }),
      Code.InvalidArgument,
      /^job_params.timeout_seconds/,
    );
    await rejectsWith(
      clients.jobs.enqueueJob({
        queue: "default",
        jobParams: { command: "x", environment: { "A=B": "1" } },
      }),
      Code.InvalidArgument,
      /job_params.environment/,
    );
    await rejectsWith(
      clients.jobs.listJobs({ pageSize: 1001 }),
      Code.InvalidArgument,
      /^page_size: is 1001, outside 1..1000/,
    );
    await rejectsWith(
      clients.jobs.getJob({ jobId: "nope" }),
      Code.InvalidArgument,
      /^job_id: is not a UUID/,
    );
    assert.deepEqual((await clients.jobs.listJobs({})).jobs, [], "nothing was written");
  });
});

Deno.test("DequeueJob leases at most 10 jobs per call, however many are asked for", async () => {
  await withServer(async (clients) => {
    for (let i = 0; i < 12; i++) {
      await clients.jobs.enqueueJob({ queue: "default", jobParams: params });
    }
    const leased = [];
    for await (const res of clients.jobs.dequeueJob({ queue: "default", maxJobs: 20 })) {
      leased.push(res);
    }
    assert.equal(leased.length, 10);
  });
});

Deno.test("unknown jobs are NotFound", async () => {
  await withServer(async (clients) => {
    const jobId = "01890a5d-ac96-774b-bcce-b302099a8057";
    await rejectsWith(clients.jobs.getJob({ jobId }), Code.NotFound);
    await rejectsWith(
      (async () => {
        for await (const _ of clients.events.streamJobEvents({ jobId })) { /* none */ }
      })(),
      Code.NotFound,
    );
  });
});

Deno.test("a waiting DequeueJob wakes as soon as a job is enqueued", async () => {
  await withServer(async (clients) => {
    const waiting = dequeue(clients, "default", 10_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const enqueuedAt = performance.now();
    const { jobId } = await clients.jobs.enqueueJob({ queue: "default", jobParams: params });
    const [leased] = await waiting;
    assert.ok(performance.now() - enqueuedAt < 1000, "woken by the enqueue, not by a timer");
    assert.equal(leased?.job?.jobId, jobId);
    assert.equal(leased?.job?.state, JobState.RUNNING);
    assert.ok(leased!.taskToken.length > 0);
  });
});

Deno.test("a DequeueJob with no work ends at the client's deadline", async () => {
  await withServer(async (clients) => {
    const started = performance.now();
    await rejectsWith(dequeue(clients, "empty", 300), Code.DeadlineExceeded);
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 250 && elapsed < 5_000, `ended after ${elapsed} ms`);
  }, { maxDequeueWaitMs: 60_000 });
});

Deno.test("a DequeueJob without a deadline ends empty at the server's cap", async () => {
  await withServer(async (clients) => {
    const started = performance.now();
    const jobs = [];
    for await (const res of clients.jobs.dequeueJob({ queue: "empty" })) jobs.push(res);
    assert.deepEqual(jobs, []);
    assert.ok(performance.now() - started >= 150);
  }, { maxDequeueWaitMs: 200 });
});

Deno.test("a client that goes away is not logged as a server error", async () => {
  const log = memoryLog();
  await withServer(async (clients) => {
    const { jobId } = await clients.jobs.enqueueJob({ queue: "default", jobParams: params });
    const controller = new AbortController();
    const following = (async () => {
      for await (
        const _ of clients.events.streamJobEvents({ jobId }, { signal: controller.signal })
      ) {
        // none
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    controller.abort();
    await following.catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 100));
  }, { log });
  const errors = log.records().filter((r) => (r.level as number) >= 50);
  assert.deepEqual(errors, []);
});

Deno.test("shutdown is bounded even when a publish stream never finishes", async () => {
  await withServer(async (_clients, url, close) => {
    // A client-streaming call whose body never ends.
    const body = new ReadableStream<Uint8Array>({ start() {} });
    const hanging = fetch(`${url}/job.v1.JobEventsService/PublishJobEvents`, {
      method: "POST",
      headers: { "content-type": "application/connect+proto", "connect-protocol-version": "1" },
      body,
    }).then((r) => r.body?.cancel()).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    await close();
    assert.ok(performance.now() - started < 3_000, "close() returned within its bound");
    await body.cancel().catch(() => {});
    await hanging;
  }, { shutdownTimeoutMs: 500 });
});

Deno.test("leases are fenced: wrong queue, forged and stale tokens are refused", async () => {
  await withServer(async (clients) => {
    const { jobId } = await clients.jobs.enqueueJob({ queue: "default", jobParams: params });
    const [first] = await dequeue(clients);
    const token = first!.taskToken;
    await rejectsWith(
      clients.jobs.updateJob({ queue: "other", taskToken: token, visibilityTimeoutSeconds: 10 }),
      Code.InvalidArgument,
      /does not match the job's queue/,
    );
    await rejectsWith(
      clients.jobs.updateJob({
        queue: "default",
        taskToken: `${token.slice(0, -3)}AAA`,
        visibilityTimeoutSeconds: 10,
      }),
      Code.InvalidArgument,
      /invalid task token/,
    );
    await rejectsWith(
      clients.jobs.completeJob({
        taskToken: token,
        jobResult: { jobId: "01890a5d-ac96-774b-bcce-b302099a8057", success: true },
      }),
      Code.InvalidArgument,
      /does not match the task token's job/,
    );
    // Hand the job back; the old token is then stale.
    await clients.jobs.updateJob({
      queue: "default",
      taskToken: token,
      visibilityTimeoutSeconds: 0,
    });
    const [second] = await dequeue(clients);
    assert.equal(second?.job?.attempt, 2);
    await rejectsWith(
      clients.jobs.completeJob({ taskToken: token, jobResult: { jobId, success: true } }),
      Code.FailedPrecondition,
      /superseded by attempt 2/,
    );
    await clients.jobs.completeJob({
      taskToken: second!.taskToken,
      jobResult: { jobId, success: true },
    });
    assert.equal((await clients.jobs.getJob({ jobId })).job?.state, JobState.COMPLETED);
  });
});

Deno.test("published events replay and tail live; the stream ends after the job does", async () => {
  await withServer(async (clients) => {
    const { jobId } = await clients.jobs.enqueueJob({ queue: "default", jobParams: params });
    const [leased] = await dequeue(clients);
    const token = leased!.taskToken;
    const start = makeEvent(1n, Date.now(), {
      case: "processStart",
      value: { $typeName: "job.v1.ProcessStartEvent", pid: 7 },
    });
    await publish(clients, token, [start]);
    const seen: bigint[] = [];
    const following = (async () => {
      for await (const { event } of clients.events.streamJobEvents({ jobId })) {
        seen.push(event!.sequence);
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const end = makeEvent(2n, Date.now(), {
      case: "processEnd",
      value: { $typeName: "job.v1.ProcessEndEvent", pid: 7, exitCode: 0 },
    });
    await publish(clients, token, [end]);
    await publish(clients, token, [end]); // a retry stores nothing twice
    await clients.jobs.completeJob({
      taskToken: token,
      jobResult: create(JobResultSchema, { jobId, success: true }),
    });
    await following;
    assert.deepEqual(seen, [1n, 2n]);
    const filtered = [];
    for await (
      const { event } of clients.events.streamJobEvents({
        jobId,
        eventFilter: [EventType.PROCESS_END],
      })
    ) filtered.push(event!.eventType);
    assert.deepEqual(filtered, [EventType.PROCESS_END]);
  });
});

Deno.test("publishing with a forged token is refused and stores nothing", async () => {
  await withServer(async (clients) => {
    const { jobId } = await clients.jobs.enqueueJob({ queue: "default", jobParams: params });
    await dequeue(clients);
    const start = makeEvent(1n, Date.now(), {
      case: "processStart",
      value: { $typeName: "job.v1.ProcessStartEvent", pid: 7 },
    });
    await rejectsWith(publish(clients, "v1.forged.token", [start]), Code.InvalidArgument);
    const seen: unknown[] = [];
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    await rejectsWith(
      (async () => {
        for await (
          const e of clients.events.streamJobEvents({ jobId }, { signal: controller.signal })
        ) seen.push(e);
      })(),
      Code.Canceled,
    );
    assert.deepEqual(seen, []);
  });
});

Deno.test("shutdown ends waiting dequeues and live tails with Unavailable", async () => {
  await withServer(async (clients, _url, close) => {
    const { jobId } = await clients.jobs.enqueueJob({ queue: "default", jobParams: params });
    const waiting = dequeue(clients, "empty", 30_000).catch((e) => ConnectError.from(e).code);
    const tail = (async () => {
      for await (const _ of clients.events.streamJobEvents({ jobId })) { /* none */ }
      return "ended";
    })().catch((e) => ConnectError.from(e).code);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = performance.now();
    await close();
    assert.ok(performance.now() - started < 5000, "shutdown was not held up by open streams");
    const dequeued = await waiting;
    assert.ok(Array.isArray(dequeued) ? dequeued.length === 0 : dequeued === Code.Unavailable);
    assert.equal(await tail, Code.Unavailable);
  });
});
