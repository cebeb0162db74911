import assert from "node:assert/strict";
import { StreamType } from "../../gen/job/v1/job_pb.ts";
import {
  type BatchLimits,
  EventBatcher,
  ITEM_OVERHEAD_BYTES,
  MAX_CHUNK_BYTES,
} from "../../src/worker/event_batcher.ts";

const limits: BatchLimits = {
  maxItems: 50,
  maxBytes: 256 * 1024,
  flushIntervalMs: 2000,
  idleFlushMs: 100,
  maxChunkBytes: MAX_CHUNK_BYTES,
};
const bytes = (n: number) => new Uint8Array(n).fill(97);

Deno.test("batcher fills a batch at max items", () => {
  const b = new EventBatcher(limits);
  const full = [];
  for (let i = 0; i < 50; i++) full.push(...b.add(StreamType.STDOUT, bytes(1), 1000));
  assert.equal(full.length, 1);
  assert.equal(full[0]!.items.length, 50);
  assert.equal(b.isEmpty, true);
});

Deno.test("batcher never lets a batch pass max bytes (an item counts length + 16)", () => {
  const b = new EventBatcher({ ...limits, maxBytes: 1000 });
  const full = [
    ...b.add(StreamType.STDOUT, bytes(500), 0),
    ...b.add(StreamType.STDERR, bytes(500), 0),
  ];
  assert.equal(full.length, 1);
  assert.equal(full[0]!.bytes, 500 + ITEM_OVERHEAD_BYTES);
  assert.equal(b.takeAll()!.items[0]!.streamType, StreamType.STDERR);
});

Deno.test("batcher splits a chunk larger than 200 KiB and drops nothing", () => {
  const b = new EventBatcher(limits);
  const big = new Uint8Array(MAX_CHUNK_BYTES * 2 + 10).map((_, i) => i % 251);
  const batches = [...b.add(StreamType.STDOUT, big, 0)];
  const rest = b.takeAll();
  if (rest !== undefined) batches.push(rest);
  const items = batches.flatMap((batch) => batch.items);
  assert.deepEqual(items.map((i) => i.output.byteLength), [MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, 10]);
  const joined = new Uint8Array(items.reduce((n, i) => n + i.output.byteLength, 0));
  let offset = 0;
  for (const i of items) {
    joined.set(i.output, offset);
    offset += i.output.byteLength;
  }
  assert.deepEqual(joined, big);
  for (const batch of batches) assert.ok(batch.bytes <= limits.maxBytes);
});

Deno.test("batcher flushes by interval after the first item, or when output pauses", () => {
  const b = new EventBatcher(limits);
  assert.equal(b.nextFlushAt(), undefined);
  b.add(StreamType.STDOUT, bytes(1), 1000);
  assert.equal(b.nextFlushAt(), 1100, "idle flush after 100 ms of quiet");
  assert.equal(b.takeDue(1099), undefined);
  // Steady output keeps pushing the idle deadline, but never past the interval.
  for (let t = 1050; t <= 3000; t += 50) b.add(StreamType.STDOUT, bytes(1), t);
  assert.equal(b.nextFlushAt(), 3000, "2 s after the first item");
  assert.equal(b.takeDue(3000)?.items.length, 41);
});

Deno.test("batcher without idle flush waits for the interval", () => {
  const b = new EventBatcher({ ...limits, idleFlushMs: 0 });
  b.add(StreamType.STDOUT, bytes(1), 500);
  assert.equal(b.nextFlushAt(), 2500);
});

Deno.test("batcher refuses limits that cannot hold an item", () => {
  assert.throws(() => new EventBatcher({ ...limits, maxItems: 0 }), RangeError);
  assert.throws(() => new EventBatcher({ ...limits, maxBytes: ITEM_OVERHEAD_BYTES }), RangeError);
});
