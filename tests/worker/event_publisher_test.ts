import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import { EventPublisher } from "../../src/worker/event_publisher.ts";
import { EventSequencer, processStartEvent } from "../../src/worker/job_events.ts";
import { isRetryable } from "../../src/worker/worker_api.ts";
import { FakeClock, settle } from "../support/fake_clock.ts";
import { memoryLog } from "../support/memory_log.ts";

const sequencer = new EventSequencer();
const event = (): JobEvent => processStartEvent(sequencer, 1, 0);

function publisherWith(
  publish: (events: readonly JobEvent[]) => Promise<void>,
  extra: {
    clock?: FakeClock;
    maxPendingBytes?: number;
    maxEventsPerCall?: number;
    onFailure?: (e: unknown) => void;
  } = {},
) {
  return new EventPublisher({
    publish,
    isRetryable,
    clock: extra.clock ?? new FakeClock(),
    logger: memoryLog().logger,
    ...(extra.maxPendingBytes === undefined ? {} : { maxPendingBytes: extra.maxPendingBytes }),
    ...(extra.onFailure === undefined ? {} : { onFailure: extra.onFailure }),
    ...(extra.maxEventsPerCall === undefined ? {} : { maxEventsPerCall: extra.maxEventsPerCall }),
  });
}

Deno.test("events are delivered in order, and an append right after a round still goes out", async () => {
  const sent: bigint[] = [];
  const publisher = publisherWith(async (events) => {
    await settle();
    sent.push(...events.map((e) => e.sequence));
  });
  const first = event();
  await publisher.append(first, 10);
  await publisher.drain();
  // An append in the moment a round ends must start a new round.
  const second = event();
  const third = event();
  await publisher.append(second, 10);
  await publisher.append(third, 10);
  await publisher.drain();
  assert.deepEqual(sent, [first.sequence, second.sequence, third.sequence]);
  assert.equal(publisher.pendingBytes, 0);
});

Deno.test("a call that fails in passing is retried with backoff; nothing is lost", async () => {
  const clock = new FakeClock();
  let calls = 0;
  const sent: bigint[] = [];
  const publisher = publisherWith((events) => {
    calls++;
    if (calls <= 2) return Promise.reject(new ConnectError("down", Code.Unavailable));
    sent.push(...events.map((e) => e.sequence));
    return Promise.resolve();
  }, { clock });
  const e = event();
  await publisher.append(e, 10);
  await settle();
  assert.equal(calls, 1);
  await clock.advance(100);
  await clock.advance(200);
  await publisher.drain();
  assert.equal(calls, 3);
  assert.deepEqual(sent, [e.sequence]);
});

Deno.test("a refused call stops delivery: later appends drop, drain throws, onFailure fires once", async () => {
  const failures: unknown[] = [];
  const publisher = publisherWith(
    () => Promise.reject(new ConnectError("lease lost", Code.FailedPrecondition)),
    { onFailure: (e) => failures.push(e) },
  );
  await publisher.append(event(), 10);
  await assert.rejects(publisher.drain(), /lease lost/);
  await publisher.append(event(), 10); // does not throw
  await assert.rejects(publisher.drain(), /lease lost/);
  assert.equal(failures.length, 1);
  assert.equal(publisher.pendingBytes, 0);
});

Deno.test("append waits while too much is pending (backpressure)", async () => {
  const gate = Promise.withResolvers<void>();
  const publisher = publisherWith(() => gate.promise, { maxPendingBytes: 100 });
  await publisher.append(event(), 80);
  await publisher.append(event(), 80); // now 160 pending: over the limit
  let third = false;
  const waiting = publisher.append(event(), 10).then(() => third = true);
  await settle();
  assert.equal(third, false, "the third append waits for room");
  gate.resolve();
  await waiting;
  await publisher.drain();
  assert.equal(third, true);
});

Deno.test("through an outage events spill to disk and all arrive in order afterwards", async () => {
  const dir = await Deno.makeTempDir();
  const clock = new FakeClock();
  let down = true;
  const sent: bigint[] = [];
  const publisher = new EventPublisher({
    publish: (events) => {
      if (down) return Promise.reject(new ConnectError("down", Code.Unavailable));
      sent.push(...events.map((e) => e.sequence));
      return Promise.resolve();
    },
    isRetryable,
    clock,
    logger: memoryLog().logger,
    maxPendingBytes: 1_000,
    spill: { path: `${dir}/events.spill`, limitBytes: 10_000_000 },
  });
  const appended: bigint[] = [];
  for (let i = 0; i < 500; i++) {
    const e = event();
    appended.push(e.sequence);
    await publisher.append(e, 100); // never waits: the spill file takes it
  }
  // 500 events of ~17 bytes encoded (+4 of framing): all but a few wait on disk.
  assert.ok(Deno.statSync(`${dir}/events.spill`).size > 8_000, "most events wait on disk");
  down = false;
  await clock.advance(5_000);
  await clock.advance(5_000);
  await publisher.drain();
  assert.deepEqual(sent, appended);
  await publisher.stop(new Error("done"));
  assert.throws(() => Deno.statSync(`${dir}/events.spill`), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("held last: rounds send all but the last call's worth, takeLast hands that over once", async () => {
  const calls: bigint[][] = [];
  const publisher = publisherWith(async (events) => {
    await settle();
    calls.push(events.map((e) => e.sequence));
  }, { maxEventsPerCall: 2 });
  const early = event();
  await publisher.append(early, 10);
  await publisher.drain();
  publisher.holdLast();
  const [a, b, c] = [event(), event(), event()];
  for (const e of [a, b, c]) await publisher.append(e, 10);
  const last = await publisher.takeLast();
  assert.deepEqual(calls, [[early.sequence], [a.sequence, b.sequence]]);
  assert.deepEqual(last.map((e) => e.sequence), [c.sequence]);
  assert.equal(publisher.pendingBytes, 0, "what was handed over is no longer the publisher's");
  assert.deepEqual(await publisher.takeLast(), []);
});

Deno.test("held last: drain lets the held events go after all", async () => {
  const sent: bigint[] = [];
  const publisher = publisherWith(async (events) => {
    await settle();
    sent.push(...events.map((e) => e.sequence));
  });
  publisher.holdLast();
  const held = event();
  await publisher.append(held, 10);
  await settle();
  assert.deepEqual(sent, [], "a single call's worth waits");
  await publisher.drain();
  assert.deepEqual(sent, [held.sequence]);
});

Deno.test("takeLast throws why delivery stopped", async () => {
  const publisher = publisherWith(() =>
    Promise.reject(new ConnectError("events: event too large", Code.ResourceExhausted))
  );
  await publisher.append(event(), 10);
  await assert.rejects(publisher.takeLast(), /event too large/);
});
