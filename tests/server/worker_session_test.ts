/**
 * WorkerSession over a real server on 127.0.0.1: credits bound what the
 * server pushes, operations are acknowledged one by one, bad sessions end
 * with errors that name the field, and the worker's session client falls back
 * to unary calls where the way to the server cannot stream both ways.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { join } from "node:path";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  type DequeueJobResponse,
  EventType,
  JobResultSchema,
  JobService,
  JobState,
  type SessionAck,
  SessionOpenSchema,
  type WorkerSessionRequest,
  WorkerSessionRequestSchema,
  type WorkerSessionResponse,
} from "../../gen/job/v1/job_pb.ts";
import { createAirunnerClients, createAirunnerTransport } from "../../src/protocol/transport.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import type { JobStore } from "../../src/store/job_store.ts";
import { SqliteJobStore } from "../../src/store/sqlite/sqlite_store.ts";
import { AwsJobStore } from "../../src/store/aws/aws_store.ts";
import { emulatorClients, freshAwsResources, startAwsEmulators } from "../support/aws.ts";
import { TaskTokenCodec } from "../../src/store/task_token.ts";
import { startServer } from "../../src/server/http_server.ts";
import { MAX_SESSION_CREDITS, MAX_SESSION_QUEUES } from "../../src/protocol/session.ts";
import { MAX_ERROR_MESSAGE_LENGTH, MAX_EVENTS_PER_PUBLISH } from "../../src/protocol/limits.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { memoryLog } from "../support/memory_log.ts";
import { sessionApiTo, unaryApiTo, withMemoryServer } from "../support/memory_server.ts";
import { startTcpProxy } from "../support/tcp_proxy.ts";

const QUEUE = "default";
const params = { command: "true" };

/** A raw session: the test writes messages and reads responses one at a time. */
function openRawSession(url: string) {
  const client = createClient(
    JobService,
    createAirunnerTransport({ serverUrl: url, http2Only: true }),
  );
  const outgoing: WorkerSessionRequest[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  async function* requests(): AsyncGenerator<WorkerSessionRequest> {
    for (;;) {
      const next = outgoing.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (closed) return;
      await new Promise<void>((resolve) => wake = resolve);
    }
  }
  const abort = new AbortController();
  const responses = client.workerSession(requests(), { signal: abort.signal })[
    Symbol.asyncIterator
  ]();
  let pendingRead: Promise<IteratorResult<WorkerSessionResponse>> | undefined;
  return {
    send(init: Parameters<typeof create<typeof WorkerSessionRequestSchema>>[1]) {
      outgoing.push(create(WorkerSessionRequestSchema, init));
      wake?.();
    },
    /** The next response, or undefined when none comes within `ms`. */
    async next(ms = 5_000): Promise<WorkerSessionResponse | undefined> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), ms);
      });
      // A read that timed out stays pending and answers the next call.
      pendingRead ??= responses.next();
      const result = await Promise.race([pendingRead, timeout]);
      clearTimeout(timer);
      if (result === "timeout") return undefined;
      pendingRead = undefined;
      if (result.done) throw new Error("the session ended");
      return result.value;
    },
    /** Reads until the stream ends; returns its error, if any. */
    async end(): Promise<unknown> {
      try {
        for (let r = await responses.next(); !r.done; r = await responses.next()) {
          // drain
        }
        return undefined;
      } catch (error) {
        return error;
      }
    },
    closeSend() {
      closed = true;
      wake?.();
    },
    abort: () => abort.abort(),
  };
}

type RawSession = ReturnType<typeof openRawSession>;

/** Reads responses until `count` jobs came; returns them with the acks seen on the way. */
async function readJobs(session: RawSession, count: number) {
  const jobs = [];
  const acks = [];
  while (jobs.length < count) {
    const res = await session.next();
    assert.ok(res !== undefined, `expected ${count} jobs, got ${jobs.length}`);
    jobs.push(...res.jobs);
    acks.push(...res.acks);
  }
  return { jobs, acks };
}

/** Reads responses until `count` acks came; returns them. */
async function readAcks(session: RawSession, count: number) {
  const acks = [];
  while (acks.length < count) {
    const res = await session.next();
    assert.ok(res !== undefined, `expected ${count} acks, got ${acks.length}`);
    acks.push(...res.acks);
  }
  return acks;
}

/** Enqueues one job and opens a session (with `open`'s extra fields) that was pushed it. */
async function sessionWithOneJob(url: string, open: { heartbeatMs?: number } = {}) {
  await createAirunnerClients({ serverUrl: url }).jobs.enqueueJob({
    queue: QUEUE,
    jobParams: params,
  });
  const session = openRawSession(url);
  session.send({ open: { queue: QUEUE, ...open }, credits: 1 });
  const { jobs: [pushed] } = await readJobs(session, 1);
  return { session, taskToken: pushed!.taskToken, jobId: pushed!.job!.jobId };
}

Deno.test("a session pushes jobs up to its credits; a completion's credit brings the next", async () => {
  await withMemoryServer(async (url, store) => {
    const clients = createAirunnerClients({ serverUrl: url });
    const { results } = await clients.jobs.enqueueJobs({
      jobs: Array.from({ length: 5 }, () => ({ queue: QUEUE, jobParams: params })),
    });
    const ids = results.map((r) => r.outcome.case === "job" ? r.outcome.value.jobId : "");
    const session = openRawSession(url);
    session.send({ open: { queue: QUEUE, visibilityTimeoutSeconds: 30 }, credits: 2 });
    const opened = await session.next();
    assert.deepEqual(opened?.jobs, [], "the first message only says the session is open");
    const { jobs } = await readJobs(session, 2);
    assert.deepEqual(jobs.map((j) => j.job?.jobId), ids.slice(0, 2), "FIFO, two credits");
    assert.equal(await session.next(300), undefined, "no third job without a credit");

    session.send({
      credits: 1,
      completions: [{
        opId: 7n,
        taskToken: jobs[0]!.taskToken,
        jobResult: create(JobResultSchema, { jobId: ids[0]!, success: true }),
      }],
    });
    const acks = [];
    const more = [];
    while (acks.length < 1 || more.length < 1) {
      const res = await session.next();
      assert.ok(res !== undefined);
      acks.push(...res.acks);
      more.push(...res.jobs);
    }
    assert.equal(acks[0]?.opId, 7n);
    assert.equal(acks[0]?.error, undefined);
    assert.equal(more[0]?.job?.jobId, ids[2]);
    assert.equal((await store.getJob(ids[0]!)).state, JobState.COMPLETED);

    session.closeSend();
    assert.equal(await session.end(), undefined, "closing the send side ends the stream cleanly");
    assert.equal((await store.getJob(ids[3]!)).state, JobState.SCHEDULED);
  });
});

Deno.test("session operations fail one by one; the session goes on", async () => {
  await withMemoryServer(async (url) => {
    const clients = createAirunnerClients({ serverUrl: url });
    const { session, taskToken: token, jobId } = await sessionWithOneJob(url);
    session.send({
      leaseUpdates: [
        { opId: 1n, taskToken: "forged", visibilityTimeoutSeconds: 30 },
        { opId: 2n, taskToken: token, visibilityTimeoutSeconds: 99_999 },
        { opId: 3n, taskToken: token, visibilityTimeoutSeconds: 30 },
      ],
      events: [{
        opId: 4n,
        taskToken: token,
        events: [makeEvent(5n, Date.now(), {
          case: "processError",
          value: { $typeName: "job.v1.ProcessErrorEvent", errorMessage: "gap" },
        })],
      }],
      completions: [{
        opId: 5n,
        taskToken: token,
        jobResult: create(JobResultSchema, { jobId: crypto.randomUUID(), success: true }),
      }],
    });
    const acks = await readAcks(session, 5);
    const byId = new Map(acks.map((a) => [a.opId, a]));
    assert.equal(byId.get(1n)?.error?.code, Code.InvalidArgument);
    assert.match(byId.get(1n)?.error?.message ?? "", /task_token/);
    assert.equal(byId.get(2n)?.error?.code, Code.InvalidArgument);
    assert.match(byId.get(2n)?.error?.message ?? "", /visibility_timeout_seconds/);
    assert.equal(byId.get(3n)?.error, undefined);
    assert.equal(byId.get(3n)?.cancelled, false);
    assert.equal(byId.get(4n)?.error?.code, Code.InvalidArgument, "a gap in sequences");
    assert.equal(byId.get(5n)?.error?.code, Code.InvalidArgument);
    assert.match(byId.get(5n)?.error?.message ?? "", /job_result\.job_id/);
    // The lease still holds and the job still runs.
    const { job } = await clients.jobs.getJob({ jobId });
    assert.equal(job?.state, JobState.RUNNING);
    session.closeSend();
    assert.equal(await session.end(), undefined);
  });
});

Deno.test("a completion's events are stored before its result; refused events leave no result, a refused result no events", async () => {
  await withMemoryServer(async (url) => {
    const clients = createAirunnerClients({ serverUrl: url });
    /** The job's stored events; a running job's stream is cut after a moment. */
    const storedTypes = async (jobId: string) => {
      const types: EventType[] = [];
      try {
        const stream = clients.events.streamJobEvents({ jobId }, {
          signal: AbortSignal.timeout(300),
        });
        for await (const res of stream) {
          if (res.event !== undefined) types.push(res.event.eventType);
        }
      } catch (error) {
        if (ConnectError.from(error).code !== Code.Canceled) throw error;
      }
      return types;
    };
    const start = (seq: bigint) =>
      makeEvent(seq, Date.now(), {
        case: "processStart",
        value: { $typeName: "job.v1.ProcessStartEvent", pid: 1 },
      });
    const end = (seq: bigint) =>
      makeEvent(seq, Date.now(), {
        case: "processEnd",
        value: { $typeName: "job.v1.ProcessEndEvent", pid: 1, exitCode: 0 },
      });
    /** Sends one completion of `held`'s job: its result fields and last events. */
    const complete = (
      held: Awaited<ReturnType<typeof sessionWithOneJob>>,
      opId: bigint,
      result: { success?: boolean; errorMessage?: string },
      events: ReturnType<typeof start>[],
    ) =>
      held.session.send({
        completions: [{
          opId,
          taskToken: held.taskToken,
          jobResult: create(JobResultSchema, { jobId: held.jobId, ...result }),
          events,
        }],
      });

    // Events with a gap: the ack says the events were refused, and the job
    // has neither them nor a result.
    const gapped = await sessionWithOneJob(url);
    complete(gapped, 1n, { success: true }, [end(5n)]);
    const [refused] = await readAcks(gapped.session, 1);
    assert.equal(refused?.eventsRefused, true);
    assert.equal(refused?.error?.code, Code.InvalidArgument);
    assert.equal((await clients.jobs.getJob({ jobId: gapped.jobId })).job?.state, JobState.RUNNING);

    // A result that fails validation stores none of its events.
    complete(gapped, 2n, { errorMessage: "x".repeat(MAX_ERROR_MESSAGE_LENGTH + 1) }, [start(1n)]);
    const [invalid] = await readAcks(gapped.session, 1);
    assert.equal(invalid?.eventsRefused, false);
    assert.match(invalid?.error?.message ?? "", /job_result\.error_message/);
    assert.deepEqual(await storedTypes(gapped.jobId), [], "no event of either is stored");

    // The same job ends properly: both events, then the result, in one operation.
    complete(gapped, 3n, { success: true }, [start(1n), end(2n)]);
    const [done] = await readAcks(gapped.session, 1);
    assert.equal(done?.error, undefined);
    assert.equal(done?.eventsRefused, false);
    const { job } = await clients.jobs.getJob({ jobId: gapped.jobId });
    assert.equal(job?.state, JobState.COMPLETED);
    assert.deepEqual(await storedTypes(gapped.jobId), [
      EventType.PROCESS_START,
      EventType.PROCESS_END,
    ]);
    // Its resend (the ack lost with a stream) is accepted, as CompleteJob's
    // is, though its events now meet a finished job; nothing changes.
    complete(gapped, 4n, { success: true }, [start(1n), end(2n)]);
    const [resent] = await readAcks(gapped.session, 1);
    assert.equal(resent?.error, undefined, resent?.error?.message);
    assert.deepEqual(await storedTypes(gapped.jobId), [
      EventType.PROCESS_START,
      EventType.PROCESS_END,
    ]);
    // Too many events is a refusal of the events, not of the result.
    const many = await sessionWithOneJob(url);
    complete(
      many,
      1n,
      { success: true },
      Array.from(
        { length: MAX_EVENTS_PER_PUBLISH + 1 },
        (_, i) => start(BigInt(i + 1)),
      ),
    );
    const [tooMany] = await readAcks(many.session, 1);
    assert.equal(tooMany?.eventsRefused, true);
    assert.match(tooMany?.error?.message ?? "", /events/);
    many.session.closeSend();
    assert.equal(await many.session.end(), undefined);
    gapped.session.closeSend();
    assert.equal(await gapped.session.end(), undefined);
  });
});

Deno.test("a session must open first, once, and within its credit limit", async () => {
  await withMemoryServer(async (url) => {
    const cases: {
      messages: Parameters<RawSession["send"]>[0][];
      field: RegExp;
    }[] = [
      { messages: [{ credits: 1 }], field: /^open: is required/ },
      { messages: [{ open: { queue: "no such/queue" } }], field: /^open\.queue:/ },
      {
        messages: [{ open: { queue: QUEUE, visibilityTimeoutSeconds: 50_000 } }],
        field: /^open\.visibility_timeout_seconds:/,
      },
      {
        messages: [{ open: { queue: QUEUE }, credits: MAX_SESSION_CREDITS + 1 }],
        field: /^credits: .*limit of 1000/,
      },
      { messages: [{ open: { queue: QUEUE }, credits: -1 }], field: /^credits: is -1/ },
      {
        messages: [{ open: { queue: QUEUE, heartbeatMs: 3_600_001 } }],
        field: /^open\.heartbeat_ms: is 3600001, outside 0\.\.3600000/,
      },
      { messages: [{ open: { queue: QUEUE } }, { open: { queue: QUEUE } }], field: /^open: may/ },
    ];
    for (const { messages, field } of cases) {
      const session = openRawSession(url);
      for (const message of messages) session.send(message);
      const error = await session.end();
      assert.ok(error !== undefined, `expected an error for ${JSON.stringify(messages)}`);
      const connectError = ConnectError.from(error);
      assert.equal(Code[connectError.code], Code[Code.InvalidArgument]);
      assert.match(connectError.rawMessage, field);
    }
  });
});

Deno.test("the session WorkerApi runs a job's whole conversation on one connection", async () => {
  await withMemoryServer(async (url, store) => {
    await using proxy = startTcpProxy(Number(new URL(url).port));
    const api = sessionApiTo(proxy.url);
    const clients = createAirunnerClients({ serverUrl: url });
    const { results } = await clients.jobs.enqueueJobs({
      jobs: Array.from({ length: 20 }, () => ({ queue: QUEUE, jobParams: params })),
    });
    assert.equal(results.length, 20);
    let done = 0;
    while (done < 20) {
      const leased = await api.claim(QUEUE, {
        maxJobs: 8,
        visibilityTimeoutSeconds: 30,
        signal: AbortSignal.timeout(5_000),
      });
      assert.ok(leased.length > 0 && leased.length <= 8);
      await Promise.all(leased.map(async ({ job, taskToken }) => {
        assert.deepEqual(await api.extendLease(taskToken, QUEUE, 30), { cancelled: false });
        await api.publishEvents(taskToken, [
          makeEvent(1n, Date.now(), {
            case: "processStart",
            value: { $typeName: "job.v1.ProcessStartEvent", pid: 1 },
          }),
        ]);
        await api.complete(taskToken, {
          result: create(JobResultSchema, { jobId: job.jobId, success: true }),
          lastEvents: [],
        });
      }));
      done += leased.length;
    }
    assert.equal(api.protocol, "session");
    await api.close();
    assert.equal(proxy.accepted, 1, "one connection carried everything");
    const page = await store.listJobs({ page: 1, pageSize: 100, state: JobState.COMPLETED });
    assert.equal(page.jobs.length, 20);
    // A stale lease is reported as the unary call would report it.
    await assert.rejects(
      api.complete("forged", {
        result: create(JobResultSchema, { jobId: results[0]!.requestId }),
        lastEvents: [],
      }),
      (error: unknown) => ConnectError.from(error).code === Code.Unavailable,
      "a closed session refuses new operations",
    );
  });
});

/** A reverse proxy that speaks HTTP/1.1 only, as many load balancers do towards clients. */
function startHttp1Proxy(targetUrl: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(async (req, res) => {
    const chunks: Uint8Array<ArrayBuffer>[] = [];
    for await (const chunk of req) chunks.push(chunk as Uint8Array<ArrayBuffer>);
    const headers = new Headers();
    for (const [key, value] of Object.entries(req.headers)) {
      if (typeof value === "string" && key !== "host" && key !== "connection") {
        headers.set(key, value);
      }
    }
    const upstream = await fetch(`${targetUrl}${req.url}`, {
      method: req.method ?? "POST",
      headers,
      body: req.method === "GET" ? null : new Blob(chunks),
    });
    const body = new Uint8Array(await upstream.arrayBuffer());
    res.writeHead(upstream.status, Object.fromEntries(upstream.headers));
    res.end(body);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}

Deno.test("auto falls back to unary calls behind an HTTP/1.1-only proxy", async () => {
  await withMemoryServer(async (url, store) => {
    const proxy = await startHttp1Proxy(url);
    try {
      const log = memoryLog();
      const api = sessionApiTo(proxy.url, { mode: "auto", logger: log.logger });
      const { jobId } = await createAirunnerClients({ serverUrl: url }).jobs.enqueueJob({
        queue: QUEUE,
        jobParams: params,
      });
      const [leased] = await api.claim(QUEUE, {
        maxJobs: 1,
        visibilityTimeoutSeconds: 30,
        signal: AbortSignal.timeout(15_000),
      });
      assert.equal(leased?.job.jobId, jobId, JSON.stringify(log.records()));
      assert.equal(api.protocol, "unary", JSON.stringify(log.records()));
      await api.complete(leased.taskToken, {
        result: create(JobResultSchema, { jobId, success: true }),
        lastEvents: [],
      });
      await api.close();
      assert.equal((await store.getJob(jobId)).state, JobState.COMPLETED);
      assert.ok(
        log.records().some((r) => String(r.msg).includes("cannot hold a worker session")),
        "the fallback is logged",
      );
    } finally {
      await proxy.close();
    }
  });
});

/** The worker's operations behave the same over both paths: the same results and the same errors. */
for (const protocol of ["unary", "session"] as const) {
  Deno.test(`WorkerApi contract over ${protocol}: claims FIFO, fences, reports cancels`, async () => {
    await withMemoryServer(async (url, store) => {
      const api = protocol === "unary" ? unaryApiTo(url) : sessionApiTo(url);
      const clients = createAirunnerClients({ serverUrl: url });
      const { results } = await clients.jobs.enqueueJobs({
        jobs: Array.from({ length: 3 }, () => ({ queue: QUEUE, jobParams: params })),
      });
      const ids = results.map((r) => r.outcome.case === "job" ? r.outcome.value.jobId : "");
      const claim = (maxJobs: number) =>
        api.claim(QUEUE, {
          maxJobs,
          visibilityTimeoutSeconds: 30,
          signal: AbortSignal.timeout(5_000),
        });
      const first = await claim(1);
      assert.deepEqual(first.map((l) => l.job.jobId), [ids[0]]);
      const rest = [...await claim(2)];
      while (rest.length < 2) rest.push(...await claim(2 - rest.length));
      assert.deepEqual(rest.map((l) => l.job.jobId), ids.slice(1));
      const [a, b, c] = [first[0]!, rest[0]!, rest[1]!];

      // A cancel shows up in the next lease update.
      await clients.jobs.cancelJob({ jobId: a.job.jobId, reason: "test" });
      assert.deepEqual(await api.extendLease(a.taskToken, QUEUE, 30), { cancelled: true });
      await api.complete(a.taskToken, {
        result: create(JobResultSchema, { jobId: a.job.jobId }),
        lastEvents: [],
      });
      assert.equal((await store.getJob(a.job.jobId)).state, JobState.CANCELLED);

      // Handing back ends the lease: the old token is fenced off with the unary call's code.
      await api.extendLease(b.taskToken, QUEUE, 0);
      await assert.rejects(
        api.complete(b.taskToken, {
          result: create(JobResultSchema, { jobId: b.job.jobId, success: true }),
          lastEvents: [],
        }),
        (error: unknown) => ConnectError.from(error).code === Code.FailedPrecondition,
      );
      await assert.rejects(
        api.publishEvents("forged", []),
        (error: unknown) => ConnectError.from(error).code === Code.InvalidArgument,
      );

      // Events are stored; a resent completion is accepted and changes nothing.
      await api.publishEvents(c.taskToken, [
        makeEvent(1n, Date.now(), {
          case: "processStart",
          value: { $typeName: "job.v1.ProcessStartEvent", pid: 1 },
        }),
      ]);
      const done = create(JobResultSchema, { jobId: c.job.jobId, success: true, exitCode: 0 });
      await api.complete(c.taskToken, { result: done, lastEvents: [] });
      const finished = await store.getJob(c.job.jobId);
      await api.complete(c.taskToken, { result: done, lastEvents: [] });
      assert.deepEqual(await store.getJob(c.job.jobId), finished);
      assert.equal(finished.state, JobState.COMPLETED);
      await api.close?.();
    });
  });
}

Deno.test("a session that grants credits and ends at once neither hangs nor keeps jobs", async () => {
  await withMemoryServer(async (url, store) => {
    const clients = createAirunnerClients({ serverUrl: url });
    await clients.jobs.enqueueJobs({
      jobs: Array.from({ length: 3 }, () => ({ queue: QUEUE, jobParams: params })),
    });
    // One whole request body (open + credits, then the end), as a buffering
    // HTTP/1.1 client sends it.
    const message = toBinary(
      WorkerSessionRequestSchema,
      create(WorkerSessionRequestSchema, { open: { queue: QUEUE }, credits: 3 }),
    );
    const body = new Uint8Array(5 + message.byteLength);
    new DataView(body.buffer).setUint32(1, message.byteLength);
    body.set(message, 5);
    for (let round = 0; round < 5; round++) {
      const response = await fetch(`${url}/job.v1.JobService/WorkerSession`, {
        method: "POST",
        headers: { "content-type": "application/connect+proto" },
        body,
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(response.status, 200);
      await response.bytes();
      // Whatever was not delivered went back; delivered jobs (attempt > 0
      // and RUNNING) are leased. Nothing is stuck between.
      const page = await store.listJobs({ page: 1, pageSize: 10 });
      for (const job of page.jobs) {
        assert.ok(job.state === JobState.SCHEDULED || job.state === JobState.RUNNING);
      }
    }
    // The server still answers at once.
    const started = performance.now();
    await clients.jobs.listJobs({});
    assert.ok(performance.now() - started < 1_000);
  });
});

Deno.test("a store failing a whole completion batch answers each completion; the server lives", async () => {
  class FailingStore extends MemoryJobStore {
    override completeBatch(): Promise<never> {
      return Promise.reject(new Error("disk full"));
    }
  }
  await withMemoryServer(async (url) => {
    const clients = createAirunnerClients({ serverUrl: url });
    const { session, taskToken, jobId } = await sessionWithOneJob(url);
    const completion = (opId: bigint) => ({
      opId,
      taskToken,
      jobResult: create(JobResultSchema, { jobId, success: true }),
    });
    session.send({ completions: [completion(1n)] });
    session.send({ completions: [completion(2n)] });
    const acks = await readAcks(session, 2);
    assert.deepEqual(acks.map((a) => a.error?.code), [Code.Internal, Code.Internal]);
    session.closeSend();
    assert.equal(await session.end(), undefined);
    // Still serving.
    assert.equal((await clients.jobs.getJob({ jobId })).job?.attempt, 1);
  }, { store: new FailingStore() });
});

Deno.test("server shutdown does not wait out its timeout for an idle session", async () => {
  await withMemoryServer(async (url, _store, server) => {
    // A worker waiting for work on an idle queue.
    const api = sessionApiTo(url);
    const stopClaiming = new AbortController();
    const claiming = api.claim(QUEUE, {
      maxJobs: 4,
      visibilityTimeoutSeconds: 30,
      signal: stopClaiming.signal,
    });
    while (api.protocol !== "session") await new Promise((r) => setTimeout(r, 10));
    const started = performance.now();
    await server.close();
    const tookMs = performance.now() - started;
    assert.ok(tookMs < 4_000, `shutdown took ${Math.round(tookMs)} ms`);
    stopClaiming.abort();
    assert.deepEqual(await claiming, []);
    await api.close();
  }, { shutdownTimeoutMs: 8_000 });
});

Deno.test("heartbeats: the server announces its interval and keeps to it, ends a worker silent for three of the worker's intervals, and never ends one that announced none", async () => {
  await withMemoryServer(async (url) => {
    const beating = openRawSession(url);
    beating.send({ open: { queue: QUEUE, heartbeatMs: 100 } });
    const opened = await beating.next();
    assert.equal(opened?.heartbeatMs, 100, "the first message announces the server's interval");
    const beat = await beating.next(1_000);
    assert.ok(beat !== undefined, "an idle session hears from the server");
    assert.deepEqual([beat.jobs, beat.acks], [[], []], "a heartbeat is an empty message");
    // This worker said it would send every 100 ms and then fell silent.
    const silentFor = performance.now();
    const error = await beating.end();
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(error.code, Code.DeadlineExceeded);
    assert.match(error.message, /sent nothing for 300 ms/);
    assert.ok(performance.now() - silentFor < 3_000);
    // End the client's side too (the server cannot), or shutdown waits for it.
    beating.closeSend();

    // A worker that announced no heartbeats (an older one) keeps its session.
    const quiet = openRawSession(url);
    quiet.send({ open: { queue: QUEUE }, credits: 1 });
    await quiet.next();
    await new Promise((resolve) => setTimeout(resolve, 800));
    const { jobId } = await createAirunnerClients({ serverUrl: url }).jobs.enqueueJob({
      queue: QUEUE,
      jobParams: params,
    });
    const { jobs } = await readJobs(quiet, 1);
    assert.equal(jobs[0]?.job?.jobId, jobId);
    quiet.closeSend();
    assert.equal(await quiet.end(), undefined);
  }, { sessionHeartbeatMs: 100 });
});

Deno.test("a worker whose messages wait behind slow store calls is not taken for silent", async () => {
  // Each lease update takes 30 ms: 40 of them keep the reader held back
  // (32 messages queued) for about a second, three times the silence limit.
  class SlowLeaseStore extends MemoryJobStore {
    override async updateLease(taskToken: string, queue: string, visibilityTimeoutMs: number) {
      await new Promise((resolve) => setTimeout(resolve, 30));
      return await super.updateLease(taskToken, queue, visibilityTimeoutMs);
    }
  }
  await withMemoryServer(async (url) => {
    const { session, taskToken } = await sessionWithOneJob(url, { heartbeatMs: 100 });
    for (let op = 1; op <= 40; op++) {
      session.send({
        leaseUpdates: [{
          opId: BigInt(op),
          taskToken,
          visibilityTimeoutSeconds: 60,
        }],
      });
    }
    // The worker keeps its promise of a message every 100 ms.
    const beats = setInterval(() => session.send({}), 50);
    try {
      const acked = new Set<bigint>();
      while (acked.size < 40) {
        const res = await session.next(5_000);
        assert.ok(res !== undefined, `only ${acked.size} of 40 lease updates were acked`);
        for (const ack of res.acks) {
          assert.equal(ack.error, undefined);
          acked.add(ack.opId);
        }
      }
    } finally {
      clearInterval(beats);
    }
    session.closeSend();
    assert.equal(await session.end(), undefined, "the session ended cleanly, not for silence");
  }, { store: new SlowLeaseStore(), sessionHeartbeatMs: 100 });
});

// --- Sessions of several queues (issue 23) ---------------------------------

/**
 * The stores a session of several queues is tested on: the embedded ones
 * wake a waiting dequeue per queue, the AWS one long-polls each queue.
 */
const QUEUE_STORES = ["memory", "sqlite", "aws"] as const;
/** Every queue the tests of several queues use (the AWS store knows only provisioned ones). */
const TEST_QUEUES = ["build", "test", "other", "a", "b", "c"];

/** A server on 127.0.0.1 over a fresh store of `kind`; both end afterwards. */
async function withServerOn(
  kind: typeof QUEUE_STORES[number],
  fn: (url: string, store: JobStore) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "airunner-session-queues-" });
  await using emulators = kind === "aws" ? await startAwsEmulators() : undefined;
  let store: JobStore;
  if (emulators !== undefined) {
    const clients = emulatorClients(emulators);
    store = new AwsJobStore({
      dynamodb: clients.dynamodb,
      sqs: clients.sqs,
      ...await freshAwsResources(clients, TEST_QUEUES),
      queueUrls: new Map(),
      tokenCodec: TaskTokenCodec.withRandomSecret(),
    });
  } else {
    store = kind === "memory" ? new MemoryJobStore() : SqliteJobStore.open({
      path: join(dir, "airunner.db"),
      tokenCodec: TaskTokenCodec.withRandomSecret(),
    });
  }
  const server = await startServer({
    store,
    logger: memoryLog().logger,
    hostname: "127.0.0.1",
    port: 0,
  });
  try {
    await fn(server.url, store);
  } finally {
    await server.close();
    await store[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Reads responses until `jobs` jobs and `acks` acks came; returns them. */
async function readJobsAndAcks(session: RawSession, jobs: number, acks: number) {
  const seen = { jobs: [] as DequeueJobResponse[], acks: [] as SessionAck[] };
  while (seen.jobs.length < jobs || seen.acks.length < acks) {
    const res = await session.next();
    assert.ok(
      res !== undefined,
      `expected ${jobs} jobs and ${acks} acks, got ${seen.jobs.length} and ${seen.acks.length}`,
    );
    seen.jobs.push(...res.jobs);
    seen.acks.push(...res.acks);
  }
  return seen;
}

for (const kind of QUEUE_STORES) {
  Deno.test(`a session of several queues takes the first queue's jobs first, and work on any of them wakes it [${kind}]`, async () => {
    await withServerOn(kind, async (url, store) => {
      const clients = createAirunnerClients({ serverUrl: url });
      const enqueue = async (queue: string) =>
        (await clients.jobs.enqueueJob({ queue, jobParams: params })).jobId;
      // test's jobs are the older ones: the order is the worker's, not the jobs' age.
      const tests = [await enqueue("test"), await enqueue("test")];
      const builds = [await enqueue("build"), await enqueue("build")];
      const other = await enqueue("other");
      const session = openRawSession(url);
      session.send({
        open: { queues: ["build", "test"], visibilityTimeoutSeconds: 30 },
        credits: 1,
      });
      let opId = 0n;
      /** Extends the pushed job's lease and completes it, granting the credit for the next. */
      const finish = (pushed: DequeueJobResponse) =>
        session.send({
          credits: 1,
          leaseUpdates: [{
            opId: ++opId,
            taskToken: pushed.taskToken,
            visibilityTimeoutSeconds: 30,
          }],
          completions: [{
            opId: ++opId,
            taskToken: pushed.taskToken,
            jobResult: create(JobResultSchema, { jobId: pushed.job!.jobId, success: true }),
          }],
        });
      const order: string[] = [];
      let { jobs: [pushed] } = await readJobsAndAcks(session, 1, 0);
      for (;;) {
        order.push(pushed!.job!.jobId);
        assert.equal(pushed!.job!.queue, order.length <= 2 ? "build" : "test");
        finish(pushed!);
        const next = await readJobsAndAcks(session, order.length < 4 ? 1 : 0, 2);
        for (const ack of next.acks) assert.equal(ack.error, undefined, ack.error?.message);
        if (order.length === 4) break;
        pushed = next.jobs[0];
      }
      assert.deepEqual(
        order,
        [...builds, ...tests],
        "build's jobs, then test's, one credit at a time",
      );
      assert.equal(await session.next(300), undefined, "a queue the session does not serve");
      assert.equal((await store.getJob(other)).state, JobState.SCHEDULED);

      // Work that comes later, on either queue, wakes the waiting session.
      const lateTest = await enqueue("test");
      const { jobs: [woken] } = await readJobsAndAcks(session, 1, 0);
      assert.equal(woken?.job?.jobId, lateTest);
      session.send({ credits: 1 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const lateBuild = await enqueue("build");
      const { jobs: [wokenAgain] } = await readJobsAndAcks(session, 1, 0);
      assert.equal(wokenAgain?.job?.jobId, lateBuild);

      // A later session of the worker (after a reconnect) keeps the lease of a
      // job of any of its queues; a job of a queue it does not serve is refused.
      const [otherLease] = await unaryApiTo(url).claim("other", {
        maxJobs: 1,
        visibilityTimeoutSeconds: 30,
        signal: AbortSignal.timeout(5_000),
      });
      const resumed = openRawSession(url);
      resumed.send({
        open: { queue: "build", queues: ["build", "test"] },
        leaseUpdates: [
          { opId: 1n, taskToken: woken!.taskToken, visibilityTimeoutSeconds: 30 },
          { opId: 2n, taskToken: wokenAgain!.taskToken, visibilityTimeoutSeconds: 30 },
          { opId: 3n, taskToken: otherLease!.taskToken, visibilityTimeoutSeconds: 30 },
        ],
      });
      const acks = new Map((await readAcks(resumed, 3)).map((a) => [a.opId, a]));
      assert.equal(acks.get(1n)?.error, undefined, acks.get(1n)?.error?.message);
      assert.equal(acks.get(2n)?.error, undefined, acks.get(2n)?.error?.message);
      assert.equal(acks.get(3n)?.error?.code, Code.InvalidArgument);
      assert.match(acks.get(3n)?.error?.message ?? "", /queue/);
      for (const s of [session, resumed]) {
        s.closeSend();
        assert.equal(await s.end(), undefined);
      }
    });
  });

  Deno.test(`a session of several queues never leases more than its credits when they get work at once [${kind}]`, async () => {
    await withServerOn(kind, async (url, store) => {
      const session = openRawSession(url);
      session.send({ open: { queues: ["a", "b", "c"] }, credits: 1 });
      assert.deepEqual((await session.next())?.jobs, [], "open");
      // Let the session wait on all three, then give two of them work in one write.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const { results } = await createAirunnerClients({ serverUrl: url }).jobs.enqueueJobs({
        jobs: ["b", "a"].map((queue) => ({ queue, jobParams: params })),
      });
      const ids = results.map((r) => r.outcome.case === "job" ? r.outcome.value.jobId : "");
      const { jobs: [first] } = await readJobsAndAcks(session, 1, 0);
      // Both waits may have leased one: the session keeps the first queue's
      // and hands the other back.
      assert.equal(first?.job?.queue, "a");
      assert.equal(await session.next(300), undefined, "one credit, one job");
      const rest = ids.filter((id) => id !== first?.job?.jobId);
      assert.equal(rest.length, 1);
      assert.equal((await store.getJob(rest[0]!)).state, JobState.SCHEDULED, "the other waits");
      session.send({ credits: 1 });
      const { jobs: [second] } = await readJobsAndAcks(session, 1, 0);
      assert.equal(second?.job?.jobId, rest[0]);
      session.closeSend();
      assert.equal(await session.end(), undefined);
    });
  });
}

Deno.test("a session's queues are valid names, none twice, at most 16, and `queue` is empty or the first", async () => {
  await withMemoryServer(async (url) => {
    const cases: { open: MessageInitShape<typeof SessionOpenSchema>; field: RegExp }[] = [
      { open: { queues: ["build", "no such/queue"] }, field: /^open\.queues\[1\]: may contain/ },
      { open: { queues: ["build", ""] }, field: /^open\.queues\[1\]: is required/ },
      {
        open: { queues: ["build", "test", "build"] },
        field: /^open\.queues\[2\]: repeats queues\[0\] \("build"\)/,
      },
      {
        open: { queues: Array.from({ length: MAX_SESSION_QUEUES + 1 }, (_, i) => `q${i}`) },
        field: /^open\.queues: has 17 queues, more than the limit of 16/,
      },
      {
        open: { queue: "test", queues: ["build", "test"] },
        field: /^open\.queue: is "test", but must be empty or the first of queues \("build"\)/,
      },
    ];
    for (const { open, field } of cases) {
      const session = openRawSession(url);
      session.send({ open, credits: 1 });
      const error = await session.end();
      assert.ok(error !== undefined, `expected an error for ${JSON.stringify(open)}`);
      const connectError = ConnectError.from(error);
      assert.equal(Code[connectError.code], Code[Code.InvalidArgument]);
      assert.match(connectError.rawMessage, field);
    }
    // The first queue in both fields is fine.
    const session = openRawSession(url);
    session.send({ open: { queue: "build", queues: ["build", "test"] } });
    assert.deepEqual((await session.next())?.jobs, []);
    session.closeSend();
    assert.equal(await session.end(), undefined);
  });
});

for (const protocol of ["unary", "session"] as const) {
  Deno.test(`WorkerApi over ${protocol} claims from several queues in their order`, async () => {
    await withMemoryServer(async (url) => {
      const api = protocol === "unary" ? unaryApiTo(url) : sessionApiTo(url);
      const clients = createAirunnerClients({ serverUrl: url });
      const enqueue = async (queue: string) =>
        (await clients.jobs.enqueueJob({ queue, jobParams: params })).jobId;
      const testJob = await enqueue("test");
      const buildJob = await enqueue("build");
      const claim = async () => {
        const signal = AbortSignal.timeout(10_000);
        for (;;) {
          const leased = await api.claim("build", {
            maxJobs: 1,
            visibilityTimeoutSeconds: 30,
            signal,
            queues: ["build", "test"],
          });
          if (leased.length > 0 || signal.aborted) return leased.map((l) => l.job.jobId);
        }
      };
      assert.deepEqual(await claim(), [buildJob]);
      assert.deepEqual(await claim(), [testJob]);
      const waiting = claim();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const later = await enqueue("test");
      assert.deepEqual(await waiting, [later]);
      await api.close?.();
    });
  });
}
