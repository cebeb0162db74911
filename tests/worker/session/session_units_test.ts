/** The worker session's pure parts: ledger, credits and framing, without a stream. */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  JobResultSchema,
  JobSchema,
  SessionAckSchema,
  WorkerSessionRequestSchema,
} from "../../../gen/job/v1/job_pb.ts";
import {
  CompletionMemory,
  MAX_REMEMBERED_COMPLETIONS,
  OperationLedger,
} from "../../../src/worker/session/session_ledger.ts";
import { SessionCredits } from "../../../src/worker/session/session_credits.ts";
import {
  MAX_OPS_PER_MESSAGE,
  messagesFor,
  RequestChannel,
} from "../../../src/worker/session/session_framing.ts";
import { LastEventsRefusedError } from "../../../src/worker/worker_api.ts";
import { EventSequencer, processEndEvent } from "../../../src/worker/job_events.ts";
import {
  cannotHoldSession,
  SessionOpenTimeoutError,
} from "../../../src/worker/session/session_connection.ts";

const lease = (taskToken: string) => ({
  kind: "lease_update" as const,
  taskToken,
  queue: "q",
  visibilityTimeoutSeconds: 60,
});

Deno.test("the ledger settles an operation by its ack, once", async () => {
  const ledger = new OperationLedger();
  const a = ledger.add(lease("a"), "");
  const b = ledger.add(lease("b"), "");
  assert.deepEqual(ledger.pending().map((op) => op.opId), [1n, 2n]);
  ledger.acknowledge(create(SessionAckSchema, { opId: 1n, cancelled: true }));
  ledger.acknowledge(create(SessionAckSchema, { opId: 1n })); // a resend's ack: ignored
  assert.equal(await a.promise, true);
  ledger.acknowledge(
    create(SessionAckSchema, {
      opId: 2n,
      error: { code: Code.FailedPrecondition, message: "lease lost" },
    }),
  );
  await assert.rejects(
    b.promise,
    (e) => e instanceof ConnectError && e.code === Code.FailedPrecondition,
  );
  assert.deepEqual(ledger.pending(), []);
  await ledger.allSettled();
});

Deno.test("the ledger rejects what is pending when told to", async () => {
  const ledger = new OperationLedger();
  const { promise } = ledger.add(lease("a"), "");
  ledger.rejectAll(new Error("closed"));
  await assert.rejects(promise, /closed/);
  assert.deepEqual(ledger.takeAll(), []);
});

Deno.test("a completion grants a credit only the first time its token is seen", () => {
  const memory = new CompletionMemory();
  assert.equal(memory.first("t1"), true);
  assert.equal(memory.first("t1"), false);
  for (let i = 0; i < MAX_REMEMBERED_COMPLETIONS; i++) memory.first(`x${i}`);
  assert.equal(memory.first("t1"), true); // forgotten: the oldest goes first
});

Deno.test("credits count what is granted, pushed and claimed", () => {
  const credits = new SessionCredits();
  const job = (id: string) => ({ job: create(JobSchema, { jobId: id }), taskToken: id });
  assert.equal(credits.missing(4), 4);
  credits.granted(4);
  assert.equal(credits.missing(4), 0);
  credits.pushed([job("a"), job("b")], 2);
  assert.equal(credits.received, 2);
  assert.equal(credits.missing(4), 0);
  assert.deepEqual(credits.take(1).map((j) => j.taskToken), ["a"]);
  assert.equal(credits.missing(4), 1);
  // A new stream starts with no credits on the server.
  credits.wanted = 3;
  assert.equal(credits.startStream(), 2);
  assert.equal(credits.missing(3), 0);
  assert.deepEqual(credits.takeAll().map((j) => j.taskToken), ["b"]);
});

Deno.test("messages carry credits first and at most MAX_OPS_PER_MESSAGE small operations", () => {
  assert.deepEqual(messagesFor([], 0), [create(WorkerSessionRequestSchema, { credits: 0 })]);
  const ledger = new OperationLedger();
  const ops = Array.from(
    { length: MAX_OPS_PER_MESSAGE + 1 },
    (_, i) => ledger.add(lease(`${i}`), "").op,
  );
  const messages = messagesFor(ops, 7);
  assert.equal(messages[0]!.credits, 7);
  assert.ok(messages.every((m) => m.leaseUpdates.length <= MAX_OPS_PER_MESSAGE));
  assert.equal(messages.reduce((n, m) => n + m.leaseUpdates.length, 0), ops.length);
  assert.ok(messages.slice(1).every((m) => m.credits === 0));
});

Deno.test("a large operation goes in a message after the small ones", () => {
  const ledger = new OperationLedger();
  const small = ledger.add(lease("s"), "").op;
  const large = ledger.add({
    kind: "completion",
    taskToken: "l",
    completion: {
      result: create(JobResultSchema, { errorMessage: "x".repeat(2000) }),
      lastEvents: [],
    },
  }, "").op;
  const messages = messagesFor([small, large], 0);
  assert.equal(messages.length, 2);
  assert.equal(messages[0]!.leaseUpdates.length, 1);
  assert.equal(messages[1]!.completions.length, 1);
});

Deno.test("the request channel tells of what is said, not of heartbeats, and ends on close", async () => {
  let said = 0;
  const channel = new RequestChannel(() => said++);
  channel.pushHeartbeat();
  channel.push(create(WorkerSessionRequestSchema, { credits: 1 }));
  channel.close();
  channel.push(create(WorkerSessionRequestSchema, { credits: 2 })); // after close: dropped
  const read = [];
  for await (const message of channel) read.push(message.credits);
  assert.deepEqual(read, [0, 1]);
  assert.equal(said, 2);
});

Deno.test("a server that cannot hold a session is told apart from one that is away", () => {
  assert.equal(cannotHoldSession(new SessionOpenTimeoutError(10)), true);
  assert.equal(cannotHoldSession(new ConnectError("no", Code.Unimplemented)), true);
  assert.equal(cannotHoldSession(new Error("http2 error: frame with invalid size")), true);
  assert.equal(cannotHoldSession(new ConnectError("refused", Code.Unavailable)), false);
});

Deno.test("a completion carries its last events in its message; refused events come back as LastEventsRefusedError", async () => {
  const ledger = new OperationLedger();
  const end = processEndEvent(new EventSequencer(), 1, 0, 5, Date.now());
  const { op, promise } = ledger.add({
    kind: "completion",
    taskToken: "t",
    completion: { result: create(JobResultSchema, { success: true }), lastEvents: [end] },
  }, "");
  const [message] = messagesFor([op], 1);
  assert.equal(message!.completions.length, 1);
  assert.deepEqual(message!.completions[0]!.events, [end]);
  assert.equal(message!.events.length, 0, "no separate events operation");
  ledger.acknowledge(create(SessionAckSchema, {
    opId: op.opId,
    eventsRefused: true,
    error: { code: Code.InvalidArgument, message: "events: a gap" },
  }));
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof LastEventsRefusedError);
    assert.equal(ConnectError.from(error.cause).code, Code.InvalidArgument);
    return true;
  });
});
