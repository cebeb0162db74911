import assert from "node:assert/strict";
import type { JobEvent } from "../../gen/job/v1/job_pb.ts";
import { EventSequencer, processErrorEvent } from "../../src/worker/job_events.ts";
import { SpillQueue } from "../../src/worker/spill_queue.ts";

function events(count: number, size = 100): JobEvent[] {
  const seq = new EventSequencer();
  return Array.from(
    { length: count },
    (_, i) => processErrorEvent(seq, `${i}`.padEnd(size, "."), 0),
  );
}

async function drain(queue: SpillQueue): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  while (!queue.isEmpty) {
    const batch = await queue.peek(7, 10_000);
    out.push(...batch.map((e) => e.event));
    queue.drop(batch.length);
  }
  return out;
}

Deno.test("past the memory limit events go to the file and come back in order", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/sub/q.spill`;
  const queue = new SpillQueue({ memoryLimitBytes: 1_000, fileLimitBytes: 1_000_000, path });
  const sent = events(100);
  for (const e of sent) await queue.push(e, 120);
  assert.ok(Deno.statSync(path).size > 0, "spilled to disk");
  assert.equal(queue.isFull, false);
  const got = await drain(queue);
  assert.deepEqual(got.map((e) => e.sequence), sent.map((e) => e.sequence));
  // Once drained, the file starts over; new events can stay in memory again.
  await queue.push(events(1)[0]!, 120);
  assert.equal((await drain(queue)).length, 1);
  await queue.close();
  assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a record larger than the memory limit still comes back whole", async () => {
  const dir = await Deno.makeTempDir();
  const queue = new SpillQueue({
    memoryLimitBytes: 50,
    fileLimitBytes: 1_000_000,
    path: `${dir}/q`,
  });
  const sent = events(3, 500);
  for (const e of sent) await queue.push(e, 520);
  assert.deepEqual((await drain(queue)).map((e) => e.sequence), sent.map((e) => e.sequence));
  await queue.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the queue is full once memory and file are both at their limits; discard empties it", async () => {
  const dir = await Deno.makeTempDir();
  const queue = new SpillQueue({ memoryLimitBytes: 200, fileLimitBytes: 300, path: `${dir}/q` });
  for (const e of events(10)) await queue.push(e, 120);
  assert.equal(queue.isFull, true);
  queue.discard();
  assert.equal(queue.isEmpty, true);
  assert.equal(queue.pendingBytes, 0);
  await queue.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("without a file the queue is full at the memory limit (backpressure)", async () => {
  const queue = new SpillQueue({ memoryLimitBytes: 200, fileLimitBytes: 0, path: "" });
  for (const e of events(2)) await queue.push(e, 120);
  assert.equal(queue.isFull, true);
  await queue.close();
});

Deno.test("pushes and reads running at once keep the order (no lost or repeated event)", async () => {
  const dir = await Deno.makeTempDir();
  const queue = new SpillQueue({
    memoryLimitBytes: 500,
    fileLimitBytes: 10_000_000,
    path: `${dir}/q`,
  });
  const sent = events(3000, 40);
  const got: bigint[] = [];
  let producing = true;
  const consumer = (async () => {
    while (producing || !queue.isEmpty) {
      const batch = await queue.peek(5, 400);
      got.push(...batch.map((e) => e.event.sequence));
      queue.drop(batch.length);
      if (batch.length === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    }
  })();
  // Pushes in flight while the consumer reads: start each before the last ends.
  let previous: Promise<void> = Promise.resolve();
  for (const e of sent) {
    const next = previous.then(() => queue.push(e, 60));
    previous = next;
    if (Math.random() < 0.5) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await previous;
  producing = false;
  await consumer;
  assert.deepEqual(got, sent.map((e) => e.sequence));
  await queue.close();
  await Deno.remove(dir, { recursive: true });
});
