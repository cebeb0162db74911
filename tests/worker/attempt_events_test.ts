import assert from "node:assert/strict";
import { EventType, type JobEvent, StreamType } from "../../gen/job/v1/job_pb.ts";
import { AttemptEvents } from "../../src/worker/attempt_events.ts";
import { EventBatcher, MAX_CHUNK_BYTES } from "../../src/worker/event_batcher.ts";
import { EventPublisher } from "../../src/worker/event_publisher.ts";
import { heartbeatEvent, processStartEvent } from "../../src/worker/job_events.ts";
import { isRetryable } from "../../src/worker/worker_api.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { memoryLog } from "../support/memory_log.ts";

function setup() {
  const published: JobEvent[] = [];
  const publisher = new EventPublisher({
    publish: (events) => {
      published.push(...events);
      return Promise.resolve();
    },
    isRetryable,
    clock: new FakeClock(),
    logger: memoryLog().logger,
  });
  const batcher = new EventBatcher({
    maxItems: 50,
    maxBytes: 256 * 1024,
    flushIntervalMs: 2000,
    idleFlushMs: 100,
    maxChunkBytes: MAX_CHUNK_BYTES,
  });
  return { published, publisher, events: new AttemptEvents(batcher, publisher, 50) };
}

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("output read before a lifecycle event is published before it, numbered in order", async () => {
  const { published, publisher, events } = setup();
  await events.lifecycle((seq) => processStartEvent(seq, 7, 0));
  await events.addOutput(StreamType.STDOUT, bytes("a"), 1);
  await events.addOutput(StreamType.STDERR, bytes("b"), 2);
  await events.lifecycle((seq) => heartbeatEvent(seq, 5, true, 3));
  await events.settled();
  await publisher.drain();
  assert.deepEqual(published.map((e) => e.eventType), [
    EventType.PROCESS_START,
    EventType.OUTPUT_BATCH,
    EventType.HEARTBEAT,
  ]);
  assert.deepEqual(published.map((e) => e.sequence), [1n, 2n, 4n], "the batch took 2 and 3");
});

Deno.test("output waits in the batcher until its flush time", async () => {
  const { published, publisher, events } = setup();
  await events.addOutput(StreamType.STDOUT, bytes("x"), 1000);
  assert.equal(events.nextFlushAt(), 1100);
  await events.flushDue(1050);
  await publisher.drain();
  assert.equal(published.length, 0);
  await events.flushDue(1100);
  await publisher.drain();
  assert.equal(published.length, 1);
  assert.equal(events.nextFlushAt(), undefined);
});
