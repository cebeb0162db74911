/**
 * The HTTP edge against clients that misbehave on the wire (issue 18,
 * holes 4 to 6), over raw TCP: the token is checked before the body is
 * read, bodies that stop short or fall silent get Connect errors and a
 * debug line, JSON nested past the limit is refused before it is parsed,
 * and a token in the query string reaches no log line.
 */
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  ListJobsRequestSchema,
  StreamJobEventsRequestSchema,
  WorkerSessionRequestSchema,
} from "../../gen/job/v1/job_pb.ts";
import { ApiTokenVerifier, mintApiToken } from "../../src/auth/jwt.ts";
import { generateP256KeyPair } from "../../src/auth/keys.ts";
import { type RunningServer, startServer } from "../../src/server/http_server.ts";
import { MAX_JSON_DEPTH } from "../../src/protocol/limits.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { type MemoryLog, memoryLog } from "../support/memory_log.ts";
import { postHead, RawConnection } from "../support/raw_http.ts";

const LIST = "/job.v1.JobService/ListJobs";
const SESSION = "/job.v1.JobService/WorkerSession";
const STREAM_EVENTS = "/job.v1.JobEventsService/StreamJobEvents";
/** Long enough that no answer in these tests can be the timeout's unless it is meant to be. */
const PATIENT_MS = 60_000;
/** How long a test waits for an answer the server should give promptly (or after a 1 s timeout). */
const ANSWER_WITHIN_MS = 10_000;

const keys = await generateP256KeyPair();

async function withServer(
  options: { bodyIdleTimeoutMs: number; auth?: boolean },
  fn: (server: RunningServer, log: MemoryLog) => Promise<void>,
): Promise<void> {
  const log = memoryLog();
  const server = await startServer({
    store: new MemoryJobStore(),
    logger: log.logger,
    hostname: "127.0.0.1",
    port: 0,
    bodyIdleTimeoutMs: options.bodyIdleTimeoutMs,
    ...(options.auth === true ? { auth: new ApiTokenVerifier([keys.publicKey]) } : {}),
  });
  try {
    await fn(server, log);
  } finally {
    await server.close();
  }
}

function envelope(message: Uint8Array, flags = 0): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + message.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, message.byteLength);
  out.set(message, 5);
  return out;
}

/** Waits until a log record matches, or `timeoutMs` passed. */
async function logged(
  log: MemoryLog,
  match: (record: Record<string, unknown>) => boolean,
  timeoutMs = ANSWER_WITHIN_MS,
): Promise<Record<string, unknown> | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const found = log.records().find(match);
    if (found !== undefined || performance.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function errorsIn(log: MemoryLog): unknown[] {
  return log.records().filter((r) => Number(r.level) >= 50);
}

Deno.test("a call without a valid token is answered Unauthenticated before any of its body is sent", async () => {
  await withServer({ bodyIdleTimeoutMs: PATIENT_MS, auth: true }, async (server, log) => {
    // Unary: the headers promise 8 MiB that never comes.
    await using unary = await RawConnection.open(server.port);
    await unary.send(
      postHead(LIST, { "content-type": "application/proto", "content-length": 8 * 1024 * 1024 }),
    );
    const answer = await unary.answer(ANSWER_WITHIN_MS);
    assert.equal(answer?.status, 401, "answered without the body");
    assert.match(answer.body, /"code":"unauthenticated".*missing bearer token/);

    // A worker session (a bidi stream) with a token of the wrong scope.
    const submitter = await mintApiToken(keys.privateKey, {
      subject: "someone",
      scopes: ["submit"],
      ttlSeconds: 600,
    });
    await using stream = await RawConnection.open(server.port);
    await stream.send(postHead(SESSION, {
      "content-type": "application/connect+proto",
      "transfer-encoding": "chunked",
      authorization: `Bearer ${submitter}`,
    }));
    const refused = await stream.answer(ANSWER_WITHIN_MS);
    assert.equal(refused?.status, 200, "a Connect stream answers its error in the stream");
    assert.match(refused.body, /"code":"permission_denied".*WorkerSession needs worker/);
    const line = await logged(log, (r) => r.code === "PermissionDenied");
    assert.equal(line?.subject, "someone", "the refused call is logged with its subject");
    assert.equal(line?.procedure, SESSION);
    assert.deepEqual(errorsIn(log), []);
  });
});

Deno.test("a body shorter than its Content-Length is InvalidArgument and a debug line, never a 500", async () => {
  await withServer({ bodyIdleTimeoutMs: PATIENT_MS }, async (server, log) => {
    // The client half-closes after 10 of 100 bytes: it can still read the answer.
    await using short = await RawConnection.open(server.port);
    await short.send(
      postHead(LIST, { "content-type": "application/proto", "content-length": 100 }),
    );
    await short.send("0123456789");
    await short.closeWrite();
    const answer = await short.answer(ANSWER_WITHIN_MS);
    assert.equal(answer?.status, 400);
    assert.equal(answer.headers["content-type"], "application/json");
    assert.match(answer.body, /"code":"invalid_argument".*ended before the 100 bytes/);

    // A larger body, and the client goes away entirely halfway.
    const gone = await RawConnection.open(server.port);
    await gone.send(
      postHead(LIST, { "content-type": "application/proto", "content-length": 1_000_000 }),
    );
    await gone.send("x".repeat(100_000));
    await gone.close();
    // And a stream whose body ends inside a message. (A half-close here
    // would read to Deno as the client leaving: it drops a streaming answer.)
    await using cut = await RawConnection.open(server.port);
    await cut.send(
      postHead(STREAM_EVENTS, { "content-type": "application/connect+proto", "content-length": 8 }),
    );
    await cut.send(new Uint8Array([0, 0, 0, 0, 100, 1, 2, 3]));
    const streamAnswer = await cut.answer(ANSWER_WITHIN_MS);
    assert.match(streamAnswer?.body ?? "", /"code":"invalid_argument".*ended inside a message/);

    const lines = await logged(
      log,
      () => log.records().filter((r) => r.code === "InvalidArgument").length >= 3,
    );
    assert.ok(lines !== undefined, "each cut-short body is logged");
    assert.ok(
      log.records().filter((r) => r.code === "InvalidArgument").every((r) => r.level === 20),
      "at debug level",
    );
    assert.deepEqual(errorsIn(log), [], "no error-level line, no stack");
  });
});

Deno.test("a body that falls silent is answered DeadlineExceeded once bodyIdleTimeoutMs passed", async () => {
  await withServer({ bodyIdleTimeoutMs: 1000 }, async (server, log) => {
    const cases = [
      // A small unary body (read in one go), and a large one (read as it arrives).
      { path: LIST, type: "application/proto", length: 100, sent: "abc" },
      { path: LIST, type: "application/proto", length: 1_000_000, sent: "abc" },
      // A stream whose first message never comes, and one stuck inside a message.
      { path: SESSION, type: "application/connect+proto", length: undefined, sent: "" },
      {
        path: STREAM_EVENTS,
        type: "application/connect+proto",
        length: 50,
        sent: "\0\0\0\0\x2dab",
      },
    ];
    await Promise.all(cases.map(async ({ path, type, length, sent }) => {
      await using conn = await RawConnection.open(server.port);
      const framing = length === undefined
        ? { "transfer-encoding": "chunked" }
        : { "content-length": length };
      await conn.send(postHead(path, { "content-type": type, ...framing }));
      if (sent !== "") await conn.send(length === undefined ? chunk(sent) : sent);
      const answer = await conn.answer(ANSWER_WITHIN_MS);
      assert.ok(answer !== undefined, `${path} (${length}): answered`);
      assert.match(answer.body, /"code":"deadline_exceeded".*no request bytes arrived for 1000 ms/);
    }));
    assert.deepEqual(errorsIn(log), []);
  });
});

function chunk(text: string): string {
  return `${text.length.toString(16)}\r\n${text}\r\n`;
}

Deno.test("a live worker session is not cut for silence between its messages", async () => {
  await withServer({ bodyIdleTimeoutMs: 500 }, async (server) => {
    await using conn = await RawConnection.open(server.port);
    await conn.send(postHead(SESSION, {
      "content-type": "application/connect+proto",
      "transfer-encoding": "chunked",
    }));
    const open = toBinary(
      WorkerSessionRequestSchema,
      create(WorkerSessionRequestSchema, { open: { queue: "quiet" } }),
    );
    const frame = envelope(open);
    await conn.send(`${frame.byteLength.toString(16)}\r\n`);
    await conn.send(frame);
    await conn.send("\r\n");
    // Silent for six idle timeouts: the session (no worker heartbeat asked) lives on.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal(conn.closed, false);
    const answer = await conn.answer(100);
    assert.equal(answer, undefined, "the stream has not ended");
  });
});

Deno.test(`JSON nested deeper than ${MAX_JSON_DEPTH} levels is refused before it is parsed`, async () => {
  await withServer({ bodyIdleTimeoutMs: PATIENT_MS }, async (server, log) => {
    const deep = `{"queue":${"[".repeat(1_000_000)}${"]".repeat(1_000_000)}}`;
    const unary = await fetch(`${server.url}${LIST}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: deep,
    });
    assert.equal(unary.status, 400);
    const error = await unary.json();
    assert.equal(error.code, "invalid_argument");
    assert.match(error.message, new RegExp(`deeper than the limit of ${MAX_JSON_DEPTH} levels`));

    const stream = await fetch(`${server.url}${STREAM_EVENTS}`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: envelope(new TextEncoder().encode(`{"jobId":${"[".repeat(100)}${"]".repeat(100)}}`)),
    });
    assert.match(await stream.text(), /"code":"invalid_argument".*deeper than the limit of 64/);

    // At the limit the scan lets it through: what refuses it now is the message's type.
    const atLimit = await fetch(`${server.url}${LIST}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: `{"queue":${"[".repeat(63)}${"]".repeat(63)}}`,
    });
    const typeError = await atLimit.json();
    assert.equal(atLimit.status, 400);
    assert.doesNotMatch(typeError.message, /deeper than/);
    assert.deepEqual(errorsIn(log), []);
  });
});

Deno.test("a token in the query string reaches no log line: the procedure is the path alone", async () => {
  const token = await mintApiToken(keys.privateKey, {
    subject: "leaky",
    scopes: ["admin"],
    ttlSeconds: 600,
  });
  for (const auth of [false, true]) {
    await withServer({ bodyIdleTimeoutMs: PATIENT_MS, auth }, async (server, log) => {
      const body = toBinary(ListJobsRequestSchema, create(ListJobsRequestSchema, { queue: "q" }));
      const listed = await fetch(`${server.url}${LIST}?token=${token}`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body,
      });
      await listed.body?.cancel();
      assert.equal(listed.status, auth ? 401 : 200);
      const streamed = await fetch(`${server.url}${STREAM_EVENTS}?access_token=${token}`, {
        method: "POST",
        headers: { "content-type": "application/connect+proto" },
        body: envelope(
          toBinary(StreamJobEventsRequestSchema, create(StreamJobEventsRequestSchema, {})),
        ),
      });
      await streamed.text();
      await (await fetch(`${server.url}/health?token=${token}`)).text();
      await (await fetch(`${server.url}/nowhere?token=${token}`)).text();
      const line = await logged(log, (r) => r.procedure === LIST);
      assert.ok(line !== undefined, "the call was logged");
      assert.ok(await logged(log, (r) => r.procedure === STREAM_EVENTS));
      const text = JSON.stringify(log.records());
      assert.ok(!text.includes(token), "the token is in no log line");
      assert.ok(!text.includes(token.slice(0, 20)), "nor any part of it");
      assert.ok(!text.includes("?"), "no query string at all");
    });
  }
});
