/**
 * The CLI's JSON client against a real server, call by call beside the
 * Connect client the worker uses: the same answers, the same errors (code
 * and message), the same event stream.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { JobParamsSchema, JobResultSchema } from "../../gen/job/v1/job_pb.ts";
import { createJsonClients } from "../../src/client/json_client.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { RpcCode, RpcError } from "../../src/rpc_error.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { defaultExecutionConfig } from "../../src/server/execution_config.ts";
import type { MemoryJobStore } from "../../src/store/memory_store.ts";
import { withMemoryServer } from "../support/memory_server.ts";

/** Both clients of `url`. */
function bothClients(url: string) {
  return {
    json: createJsonClients({ serverUrl: url }),
    connect: createAirunnerClients({ serverUrl: url }),
  };
}

/** What a failed call threw, as code and message. */
async function failureOf(call: () => Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call();
  } catch (error) {
    const e = error as RpcError | ConnectError;
    assert.ok(e instanceof RpcError || e instanceof ConnectError, String(error));
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("the call succeeded");
}

/** A finished job with a start, three outputs in a batch and an end. */
async function finishedJob(store: MemoryJobStore): Promise<string> {
  const { job } = await store.enqueue({
    requestId: "",
    queue: "default",
    params: create(JobParamsSchema, { command: "x", metadata: { k: "v" } }),
    executionConfig: defaultExecutionConfig(),
  });
  const [leased] = await store.dequeue("default", {
    maxJobs: 1,
    visibilityTimeoutMs: 60_000,
    signal: AbortSignal.timeout(1000),
  });
  const bytes = (text: string) => new TextEncoder().encode(text);
  await store.publishEvents(leased!.taskToken, [
    makeEvent(1n, Date.now(), {
      case: "processStart",
      value: { $typeName: "job.v1.ProcessStartEvent", pid: 42 },
    }),
    makeEvent(2n, Date.now(), {
      case: "outputBatch",
      value: {
        $typeName: "job.v1.OutputBatchEvent",
        outputs: ["a", "b\u00ff", "c\n"].map((t, i) => ({
          $typeName: "job.v1.OutputItem" as const,
          output: bytes(t),
          streamType: 1 + (i % 2),
          timestampDeltaMs: i,
        })),
        startSequence: 2n,
        endSequence: 4n,
        firstTimestampMs: BigInt(Date.now()),
        playbackIntervalMillis: 0,
      },
    }),
  ]);
  await store.complete(
    leased!.taskToken,
    create(JobResultSchema, { jobId: job.jobId, success: false, exitCode: 3 }),
  );
  return job.jobId;
}

Deno.test("unary calls answer as the Connect client's do", async () => {
  await withMemoryServer(async (url) => {
    const { json, connect } = bothClients(url);
    const params = {
      command: "echo",
      args: ["a b", "ü"],
      environment: { A: "1" },
      timeoutSeconds: 9,
    };
    const enqueued = await json.jobs.enqueueJob({
      queue: "q1",
      requestId: "r1",
      jobParams: params,
    });
    // The same request id: the same job, as Connect sees it too.
    const again = await connect.jobs.enqueueJob({
      queue: "q1",
      requestId: "r1",
      jobParams: params,
    });
    assert.equal(again.jobId, enqueued.jobId);
    assert.deepEqual(enqueued.createdAt, again.createdAt);

    assert.deepEqual(
      await json.jobs.getJob({ jobId: enqueued.jobId }),
      await connect.jobs.getJob({ jobId: enqueued.jobId }),
    );
    assert.deepEqual(
      await json.jobs.listJobs({ queue: "q1", pageSize: 10 }),
      await connect.jobs.listJobs({ queue: "q1", pageSize: 10 }),
    );
    const batch = await json.jobs.enqueueJobs({
      jobs: [{ queue: "q1", jobParams: { command: "true" } }, {
        queue: "q2",
        jobParams: { command: "x" },
      }],
    });
    assert.equal(batch.results.length, 2);
    assert.equal(batch.results[0]!.outcome.case, "job");
    assert.equal(batch.results[1]!.outcome.case, "job");

    const cancelled = await json.jobs.cancelJob({ jobId: enqueued.jobId, reason: "test" });
    assert.deepEqual(cancelled.job, (await connect.jobs.getJob({ jobId: enqueued.jobId })).job);
    assert.equal(cancelled.job?.cancelReason, "test");
  });
});

Deno.test("server errors carry the Connect client's code and message", async () => {
  await withMemoryServer(async (url) => {
    const { json, connect } = bothClients(url);
    const missing = { jobId: "00000000-0000-0000-0000-000000000000" };
    const notFound = await failureOf(() => json.jobs.getJob(missing));
    assert.equal(notFound.code, RpcCode.NotFound);
    assert.deepEqual(notFound, await failureOf(() => connect.jobs.getJob(missing)));

    const bad = { queue: "no spaces here", jobParams: { command: "x" } };
    const invalid = await failureOf(() => json.jobs.enqueueJob(bad));
    assert.equal(invalid.code, RpcCode.InvalidArgument);
    assert.deepEqual(invalid, await failureOf(() => connect.jobs.enqueueJob(bad)));
  });
});

Deno.test("a server that is not there is unknown, with the refusal as the cause", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const json = createJsonClients({ serverUrl: `http://127.0.0.1:${port}` });
  const error = await json.jobs.getJob({ jobId: "x" }).catch((e) => e);
  assert.ok(error instanceof RpcError);
  assert.equal(error.code, RpcCode.Unknown);
  // Over its own HTTP/1.1 the client has the refusal itself as the cause.
  assert.ok(error.cause instanceof Deno.errors.ConnectionRefused, String(error.cause));
  // For https:// it uses fetch, which nests the reason one deeper:
  // TypeError("fetch failed") caused by the refusal.
  const viaFetch = await createJsonClients({ serverUrl: `https://127.0.0.1:${port}` }).jobs
    .getJob({ jobId: "x" }).catch((e) => e);
  assert.ok(viaFetch instanceof RpcError);
  assert.equal(viaFetch.code, RpcCode.Unknown);
  assert.match(String((viaFetch.cause as Error).cause), /connection refused/i);
});

Deno.test("a call deadline ends a stream with deadline_exceeded; an abort with canceled", async () => {
  await withMemoryServer(async (url, store) => {
    const { jobId } = (await store.enqueue({
      requestId: "",
      queue: "default",
      params: create(JobParamsSchema, { command: "x" }),
      executionConfig: defaultExecutionConfig(),
    })).job;
    const json = createJsonClients({ serverUrl: url, timeoutMs: 300 });
    const drain = async (signal?: AbortSignal) => {
      for await (const _ of json.events.streamJobEvents({ jobId }, signal ? { signal } : {})) {
        // A scheduled job has no events; the stream waits for them.
      }
    };
    const late = await failureOf(() => drain());
    assert.deepEqual(late, { code: RpcCode.DeadlineExceeded, message: "the operation timed out" });
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 50);
    assert.equal((await failureOf(() => drain(stop.signal))).code, RpcCode.Canceled);
  });
});

Deno.test("a finished job's stream gives the Connect client's events, then ends", async () => {
  await withMemoryServer(async (url, store) => {
    const jobId = await finishedJob(store);
    const { json, connect } = bothClients(url);
    const all = async (stream: AsyncIterable<unknown>) => {
      const seen: unknown[] = [];
      for await (const res of stream) seen.push(res);
      return seen;
    };
    const viaJson = await all(json.events.streamJobEvents({ jobId }));
    assert.equal(viaJson.length, 2, "the start and the batch");
    assert.deepEqual(viaJson, await all(connect.events.streamJobEvents({ jobId })));
    // From a sequence on, with a filter: the request's int64 and enum list reach the server.
    const tail = await all(
      json.events.streamJobEvents({ jobId, fromSequence: 2n, eventFilter: [7] }),
    );
    assert.deepEqual(
      tail,
      await all(connect.events.streamJobEvents({ jobId, fromSequence: 2n, eventFilter: [7] })),
    );
    assert.equal(tail.length, 1);
  });
});

/** A server on 127.0.0.1 that answers every call with `body`, chunk by chunk. */
function fakeStreamServer(chunks: () => Uint8Array[]) {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      new Response(ReadableStream.from(chunks()), {
        headers: { "content-type": "application/connect+json" },
      }),
  );
}

function framed(flags: number, json: unknown, claimedLength?: number): Uint8Array {
  const data = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, claimedLength ?? data.byteLength);
  out.set(data, 5);
  return out;
}

Deno.test("a 200 answer that is not the call's content type fails as internal", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      new Response("<!DOCTYPE html><p>proxy says hi", { headers: { "content-type": "text/html" } }),
  );
  const json = createJsonClients({ serverUrl: `http://127.0.0.1:${server.addr.port}` });
  const unary = await failureOf(() => json.jobs.getJob({ jobId: "j" }));
  assert.equal(unary.code, RpcCode.Internal);
  assert.match(unary.message, /content type "text\/html", not application\/json/);
  const stream = await failureOf(async () => {
    for await (const _ of json.events.streamJobEvents({ jobId: "j" })) {
      // drain
    }
  });
  assert.equal(stream.code, RpcCode.Internal);
  assert.match(stream.message, /not application\/connect\+json/);
});

Deno.test("stream envelopes split across any chunks decode whole", async () => {
  const event = { event: { sequence: "1", processStart: { pid: 7 } } };
  const whole = [...framed(0, event), ...framed(0, event), ...framed(2, {})];
  // One byte per chunk: every header and body is cut.
  await using server = fakeStreamServer(() => whole.map((b) => new Uint8Array([b])));
  const json = createJsonClients({ serverUrl: `http://127.0.0.1:${server.addr.port}` });
  const seen = [];
  for await (const res of json.events.streamJobEvents({ jobId: "j" })) seen.push(res);
  assert.equal(seen.length, 2);
  assert.equal(seen[1]!.event?.sequence, 1n);
});

Deno.test("a hostile stream cannot make the client buffer without end, nor hide an error", async () => {
  const cases: [Uint8Array[], number, RegExp][] = [
    [[framed(0, {}, 0xffff_ffff)], RpcCode.ResourceExhausted, /larger than/],
    [[framed(1, {})], RpcCode.Internal, /flags 0x1/],
    [[framed(4, {})], RpcCode.Internal, /flags 0x4/],
    [[framed(0, "not a message")], RpcCode.Internal, /does not decode/],
    [
      [framed(2, { error: { code: "permission_denied", message: "no" } })],
      RpcCode.PermissionDenied,
      /^no$/,
    ],
    [[framed(0, { event: {} })], RpcCode.Unknown, /without its end-of-stream/],
  ];
  for (const [chunks, code, message] of cases) {
    await using server = fakeStreamServer(() => chunks);
    const json = createJsonClients({ serverUrl: `http://127.0.0.1:${server.addr.port}` });
    const failure = await failureOf(async () => {
      for await (const _ of json.events.streamJobEvents({ jobId: "j" })) {
        // drain
      }
    });
    assert.equal(failure.code, code, failure.message);
    assert.match(failure.message, message);
  }
});
