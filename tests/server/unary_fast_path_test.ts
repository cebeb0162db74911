/**
 * The unary fast path (src/server/unary_fast_path.ts) must answer exactly
 * as Connect's handler does: the same requests go to a server with it and
 * one without, and the answers are compared.
 */
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  EnqueueJobRequestSchema,
  EnqueueJobResponseSchema,
  GetJobRequestSchema,
  JobService,
  JobState,
  ListJobsRequestSchema,
} from "../../gen/job/v1/job_pb.ts";
import { ApiTokenVerifier, mintApiToken } from "../../src/auth/jwt.ts";
import { generateP256KeyPair } from "../../src/auth/keys.ts";
import { Code, ConnectError, createContextValues, type HandlerContext } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import {
  createFastUnaryRoutes,
  type FastUnaryRoute,
  isPlainBinaryUnary,
} from "../../src/server/unary_fast_path.ts";
import { type RunningServer, startServer } from "../../src/server/http_server.ts";
import { IdleWatchdog } from "../../src/server/idle_watchdog.ts";
import { toFetchHandler } from "../../src/server/rpc_route.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { type MemoryLog, memoryLog } from "../support/memory_log.ts";

const keys = await generateP256KeyPair();
const PROTO = { "content-type": "application/proto" };
const ENQUEUE = "/job.v1.JobService/EnqueueJob";

Deno.test("only a POST of application/proto without compression or timeout takes the fast path", () => {
  const plain = (extra: Record<string, string> = {}) => new Headers({ ...PROTO, ...extra });
  assert.ok(isPlainBinaryUnary("POST", plain()));
  assert.ok(isPlainBinaryUnary("POST", plain({ "connect-protocol-version": "1" })));
  assert.ok(isPlainBinaryUnary("POST", plain({ "content-encoding": "identity" })));
  assert.ok(!isPlainBinaryUnary("GET", plain()));
  assert.ok(!isPlainBinaryUnary("POST", new Headers({ "content-type": "application/json" })));
  assert.ok(!isPlainBinaryUnary("POST", new Headers({ "content-type": "application/grpc-web" })));
  assert.ok(!isPlainBinaryUnary("POST", new Headers()));
  assert.ok(!isPlainBinaryUnary("POST", plain({ "content-encoding": "gzip" })));
  assert.ok(!isPlainBinaryUnary("POST", plain({ "connect-timeout-ms": "1000" })));
  assert.ok(!isPlainBinaryUnary("POST", plain({ "connect-protocol-version": "2" })));
});

const NO_OPTIONS = { interceptors: [], shutdownSignal: new AbortController().signal };

Deno.test("the fast routes cover every unary method and decline what they do not serve", () => {
  const routes = createFastUnaryRoutes(
    [{ service: JobService, impl: { enqueueJob: () => ({}), getJob: () => ({}) } }],
    NO_OPTIONS,
  );
  // Only methods the implementation has; streaming methods never.
  assert.deepEqual([...routes.keys()].sort(), [ENQUEUE, "/job.v1.JobService/GetJob"]);
  const route = routes.get(ENQUEUE)!;
  const body = toBinary(EnqueueJobRequestSchema, create(EnqueueJobRequestSchema, { queue: "q" }));
  const at = "http://127.0.0.1/job.v1.JobService/EnqueueJob";
  const values = createContextValues();
  assert.ok(
    route(new Request(at, { method: "POST", headers: PROTO }), body, values) instanceof Promise,
  );
  const json = new Request(at, { method: "POST", headers: { "content-type": "application/json" } });
  assert.equal(route(json, body, values), undefined, "JSON goes to Connect");
  const garbage = new Uint8Array([0xff, 0xff, 0xff]);
  assert.equal(
    route(new Request(at, { method: "POST", headers: PROTO }), garbage, values),
    undefined,
    "a body that does not parse goes to Connect, which words the error",
  );
});

Deno.test("a fast call's signal follows the server's shutdown and aborts when the call ends", async () => {
  const shutdown = new AbortController();
  const signals: AbortSignal[] = [];
  const routes = createFastUnaryRoutes([{
    service: JobService,
    impl: {
      // Waits until its signal aborts, as a long poll would.
      enqueueJob: (_req: unknown, ctx: HandlerContext) =>
        new Promise((resolve) => {
          signals.push(ctx.signal);
          ctx.signal.addEventListener("abort", () => resolve({ jobId: "ended" }), { once: true });
        }),
      getJob: (_req: unknown, ctx: HandlerContext) => (signals.push(ctx.signal), {}),
    },
  }], { interceptors: [], shutdownSignal: shutdown.signal });
  const at = (path: string) =>
    new Request(`http://127.0.0.1${path}`, { method: "POST", headers: PROTO });
  const waiting = routes.get(ENQUEUE)!(at(ENQUEUE), new Uint8Array(), createContextValues())!;
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(signals.length, 1);
  assert.ok(!signals[0]!.aborted, "still waiting");
  shutdown.abort(new Error("shutting down"));
  const answer = await waiting;
  assert.equal(answer.status, 200);
  assert.equal(fromBinary(EnqueueJobResponseSchema, await answer.bytes()).jobId, "ended");
  const quick = await routes.get("/job.v1.JobService/GetJob")!(
    at("/job.v1.JobService/GetJob"),
    new Uint8Array(),
    createContextValues(),
  )!;
  assert.equal(quick.status, 200);
  assert.ok(signals[1]!.aborted, "a call's signal aborts once the call has ended");
});

Deno.test("router options the fast path does not implement are refused by name", () => {
  const services = [{ service: JobService, impl: {} }];
  assert.throws(
    () => createFastUnaryRoutes(services, { ...NO_OPTIONS, requireConnectProtocolHeader: true }),
    /does not implement requireConnectProtocolHeader/,
  );
  assert.throws(
    () => createFastUnaryRoutes(services, { ...NO_OPTIONS, jsonOptions: {}, writeMaxBytes: 1 }),
    /does not implement jsonOptions, writeMaxBytes/,
  );
});

Deno.test("the fast path runs the router's request gate before the interceptors, as Connect does", async () => {
  const ran: string[] = [];
  const routes = createFastUnaryRoutes([{
    service: JobService,
    impl: { enqueueJob: () => (ran.push("impl"), {}) },
  }], {
    ...NO_OPTIONS,
    interceptors: [(next) => (req) => (ran.push("interceptor"), next(req))],
    requestGate: (ctx) => {
      ran.push("gate");
      if (ctx.requestHeader.has("x-refuse")) throw new ConnectError("no", Code.Unauthenticated);
    },
  });
  const at = (headers: Record<string, string>) =>
    new Request(`http://127.0.0.1${ENQUEUE}`, {
      method: "POST",
      headers: { ...PROTO, ...headers },
    });
  const refused = await routes.get(ENQUEUE)!(
    at({ "x-refuse": "1" }),
    new Uint8Array(),
    createContextValues(),
  )!;
  assert.equal(refused.status, 401);
  assert.deepEqual(await refused.json(), { code: "unauthenticated", message: "no" });
  assert.deepEqual(ran, ["gate"], "neither interceptors nor the implementation ran");
  const served = await routes.get(ENQUEUE)!(at({}), new Uint8Array(), createContextValues())!;
  assert.equal(served.status, 200);
  assert.deepEqual(ran, ["gate", "gate", "interceptor", "impl"]);
});

Deno.test("a route's handler offers plain unary calls to the fast path and everything else to Connect", async () => {
  const connectSaw: string[] = [];
  const connect: UniversalHandler = Object.assign(async (req: UniversalServerRequest) => {
    let bytes = 0;
    for await (const chunk of req.body as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
    connectSaw.push(`${req.header.get("content-type")} ${bytes}`);
    return {
      status: 200,
      header: new Headers({ "content-length": "7" }),
      body: oneChunk("connect"),
    };
  }, {
    protocolNames: ["connect"],
    allowedMethods: ["POST"],
    supportedContentType: Object.assign(() => true, { supported: [/.*/] }),
    requestPath: ENQUEUE,
    service: JobService,
    method: JobService.method.enqueueJob,
  });
  const fast: FastUnaryRoute = (req, body) =>
    body.byteLength === 3 || req.headers.get("content-type") !== "application/proto"
      ? undefined
      : Promise.resolve(new Response("fast"));
  using watchdog = disposable(new IdleWatchdog(1000));
  const handle = toFetchHandler(connect, {
    bufferStream: false,
    fastRoute: fast,
    edge: { auth: undefined, watchdog: watchdog.value, bodyIdleTimeoutMs: 30_000 },
  });
  const send = async (body: string, contentType: string) => {
    const res = await handle(
      new Request(`http://127.0.0.1${ENQUEUE}`, {
        method: "POST",
        body,
        headers: { "content-type": contentType, "content-length": String(body.length) },
      }),
    );
    return await res.text();
  };
  assert.equal(await send("12", "application/proto"), "fast");
  assert.deepEqual(connectSaw, [], "Connect's handler did not run");
  assert.equal(await send("{}", "application/json"), "connect");
  assert.equal(await send("123", "application/proto"), "connect", "declined: Connect answers");
  assert.deepEqual(connectSaw, ["application/json 2", "application/proto 3"], "with the body");
});

function disposable(watchdog: IdleWatchdog) {
  return { value: watchdog, [Symbol.dispose]: () => watchdog.close() };
}

async function* oneChunk(text: string): AsyncIterable<Uint8Array> {
  yield new TextEncoder().encode(text);
}

/**
 * Runs `fn` against two servers, with and without the fast path; then the
 * two logs must say the same, call by call (durations and times aside).
 */
async function withBothServers(
  fn: (fast: RunningServer, connect: RunningServer) => Promise<void>,
  options: { auth?: ApiTokenVerifier } = {},
) {
  const logs = [memoryLog(), memoryLog()] as const;
  const start = (fastUnaryPath: boolean, log: MemoryLog) =>
    startServer({
      store: new MemoryJobStore(),
      logger: log.logger,
      hostname: "127.0.0.1",
      port: 0,
      maxDequeueWaitMs: 50,
      fastUnaryPath,
      ...(options.auth === undefined ? {} : { auth: options.auth }),
    });
  const fast = await start(true, logs[0]);
  const connect = await start(false, logs[1]);
  try {
    await fn(fast, connect);
  } finally {
    await fast.close();
    await connect.close();
  }
  const rpcLines = (log: MemoryLog) =>
    log.records().filter((r) => r.procedure !== undefined).map((
      { procedure, code, subject, msg, level },
    ) => ({ procedure, code, subject, msg, level }));
  const [a, b] = logs.map(rpcLines);
  assert.ok(a!.length > 0, "the calls were logged");
  assert.deepEqual(a, b, "both paths log the same");
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

async function post(
  server: RunningServer,
  path: string,
  body: Uint8Array<ArrayBuffer>,
  headers: Record<string, string> = PROTO,
): Promise<Answer> {
  const res = await fetch(`${server.url}${path}`, { method: "POST", body, headers });
  const answer = new Uint8Array(await res.arrayBuffer());
  const kept: Record<string, string> = {};
  // The date differs from call to call; everything else must match.
  res.headers.forEach((value, key) => key !== "date" && (kept[key] = value));
  return { status: res.status, headers: kept, body: answer };
}

async function assertSameAnswer(
  fast: RunningServer,
  connect: RunningServer,
  path: string,
  body: Uint8Array<ArrayBuffer>,
  headers: Record<string, string> = PROTO,
): Promise<Answer> {
  const a = await post(fast, path, body, headers);
  const b = await post(connect, path, body, headers);
  const text = (x: Answer) => new TextDecoder().decode(x.body);
  assert.equal(a.status, b.status, `${path}: ${text(a)} vs ${text(b)}`);
  assert.deepEqual(a.headers, b.headers, path);
  assert.equal(text(a), text(b), path);
  return a;
}

Deno.test("errors through the fast path are Connect's, byte for byte", async () => {
  await withBothServers(async (fast, connect) => {
    const enqueue = (init: Parameters<typeof create<typeof EnqueueJobRequestSchema>>[1]) =>
      toBinary(EnqueueJobRequestSchema, create(EnqueueJobRequestSchema, init));
    const bad = await assertSameAnswer(fast, connect, ENQUEUE, enqueue({ queue: "no spaces" }));
    assert.equal(bad.status, 400);
    assert.match(new TextDecoder().decode(bad.body), /"code":"invalid_argument".*queue/);
    const missing = await assertSameAnswer(
      fast,
      connect,
      "/job.v1.JobService/GetJob",
      toBinary(
        GetJobRequestSchema,
        create(GetJobRequestSchema, { jobId: "01900000-0000-7000-8000-000000000000" }),
      ),
    );
    assert.equal(missing.status, 404);
    // Declined by the fast path, so Connect answers both: still the same.
    await assertSameAnswer(fast, connect, ENQUEUE, new Uint8Array([0xff, 0xff, 0xff]));
    await assertSameAnswer(fast, connect, ENQUEUE, enqueue({ queue: "q" }), {
      ...PROTO,
      "content-encoding": "gzip",
    });
    // A listing of an empty queue: the same empty page.
    const idle = await assertSameAnswer(
      fast,
      connect,
      "/job.v1.JobService/ListJobs",
      toBinary(ListJobsRequestSchema, create(ListJobsRequestSchema, { queue: "q" })),
    );
    assert.equal(idle.status, 200);
  });
});

Deno.test("a successful call through the fast path answers as Connect does", async () => {
  await withBothServers(async (fast, connect) => {
    const body = toBinary(
      EnqueueJobRequestSchema,
      create(EnqueueJobRequestSchema, { queue: "q", jobParams: { command: "true" } }),
    );
    const [a, b] = [await post(fast, ENQUEUE, body), await post(connect, ENQUEUE, body)];
    assert.equal(a.status, 200);
    assert.deepEqual(a.headers, b.headers);
    // Job ids and times differ between the two stores; the shape does not.
    const [x, y] = [a, b].map((answer) => fromBinary(EnqueueJobResponseSchema, answer.body));
    assert.equal(x!.state, JobState.SCHEDULED);
    assert.equal(x!.state, y!.state);
    assert.match(x!.jobId, /^[0-9a-f-]{36}$/);
  });
});

Deno.test("no token and a wrong scope are refused at the edge, the same with the fast path as without", async () => {
  await withBothServers(async (fast, connect) => {
    const body = toBinary(
      EnqueueJobRequestSchema,
      create(EnqueueJobRequestSchema, { queue: "q", jobParams: { command: "true" } }),
    );
    const anonymous = await assertSameAnswer(fast, connect, ENQUEUE, body);
    assert.equal(anonymous.status, 401);
    const worker = await mintApiToken(keys.privateKey, {
      subject: "w",
      scopes: ["worker"],
      ttlSeconds: 600,
    });
    const refused = await assertSameAnswer(fast, connect, ENQUEUE, body, {
      ...PROTO,
      authorization: `Bearer ${worker}`,
    });
    assert.equal(refused.status, 403);
    const submitter = await mintApiToken(keys.privateKey, {
      subject: "s",
      scopes: ["submit"],
      ttlSeconds: 600,
    });
    const accepted = { ...PROTO, authorization: `Bearer ${submitter}` };
    const [a, b] = [
      await post(fast, ENQUEUE, body, accepted),
      await post(connect, ENQUEUE, body, accepted),
    ];
    assert.equal(a.status, 200);
    assert.deepEqual(a.headers, b.headers);
  }, { auth: new ApiTokenVerifier([keys.publicKey]) });
});
