/**
 * The output pump with secrets, on a fake clock: a secret split across two
 * reads is masked; bytes held back as a possible secret go out once the
 * stream has been quiet for maxHoldMs, and at its end; without secrets the
 * read chunks themselves are batched.
 */
import assert from "node:assert/strict";
import { type JobEvent, StreamType } from "../../gen/job/v1/job_pb.ts";
import { AttemptEvents } from "../../src/worker/attempt_events.ts";
import { EventBatcher, MAX_CHUNK_BYTES } from "../../src/worker/event_batcher.ts";
import { EventPublisher } from "../../src/worker/event_publisher.ts";
import { processEndEvent } from "../../src/worker/job_events.ts";
import { pumpOutput } from "../../src/worker/output_pump.ts";
import { secretPatterns } from "../../src/worker/secret_masker.ts";
import { isRetryable } from "../../src/worker/worker_api.ts";
import { FakeClock, settle } from "../support/fake_clock.ts";
import { memoryLog } from "../support/memory_log.ts";

function pipe() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  return {
    stream,
    write: (text: string) => controller.enqueue(new TextEncoder().encode(text)),
    writeBytes: (bytes: Uint8Array) => controller.enqueue(bytes),
    close: () => controller.close(),
  };
}

function setup(secrets: string[]) {
  const clock = new FakeClock();
  const published: JobEvent[] = [];
  const publisher = new EventPublisher({
    publish: (events) => {
      published.push(...events);
      return Promise.resolve();
    },
    isRetryable,
    clock,
    logger: memoryLog().logger,
  });
  const events = new AttemptEvents(
    new EventBatcher({
      maxItems: 50,
      maxBytes: 256 * 1024,
      flushIntervalMs: 2000,
      idleFlushMs: 100,
      maxChunkBytes: MAX_CHUNK_BYTES,
    }),
    publisher,
    0,
  );
  const stdout = pipe();
  const stderr = pipe();
  let exit!: () => void;
  const exited = new Promise<void>((resolve) => exit = resolve);
  const pumping = pumpOutput({
    stdout: stdout.stream,
    stderr: stderr.stream,
    events,
    clock,
    exited,
    drainAfterExitMs: 1000,
    secretPatterns: secretPatterns(secrets),
    maxHoldMs: 100,
  });
  const items = () =>
    published.flatMap((e) => e.eventData.case === "outputBatch" ? e.eventData.value.outputs : []);
  /** What was published of `stream` so far. */
  const text = async (stream: StreamType) => {
    await publisher.drain();
    return new TextDecoder().decode(
      new Uint8Array(items().filter((o) => o.streamType === stream).flatMap((o) => [...o.output])),
    );
  };
  const end = async () => {
    stdout.close();
    stderr.close();
    exit();
    await pumping;
    // As job execution does: the end's lifecycle event flushes what waits.
    await events.lifecycle((seq) => processEndEvent(seq, 1, 0, 0, clock.now()));
    await publisher.drain();
  };
  return { clock, stdout, stderr, text, items, end };
}

Deno.test("a secret split across two reads is masked; held bytes wait only while the stream goes on", async () => {
  const { clock, stdout, stderr, text, end } = setup(["s3cr3t-value"]);
  stdout.write("token=s3cr");
  await settle();
  await clock.advance(50);
  assert.equal(await text(StreamType.STDOUT), "", "nothing flushed yet");
  stdout.write("3t-value\n");
  stderr.write("err s3cr3t-");
  await settle();
  stderr.write("value\n");
  await settle();
  await clock.advance(200);
  assert.equal(await text(StreamType.STDOUT), "token=***\n");
  assert.equal(await text(StreamType.STDERR), "err ***\n");

  // A possible start of a secret, then quiet: it goes after maxHoldMs (and the batch's idle flush).
  stdout.write("s3c");
  await settle();
  await clock.advance(100);
  await clock.advance(100);
  assert.equal(await text(StreamType.STDOUT), "token=***\ns3c");

  // The end of the stream releases what is held.
  stdout.write("s3cr3t");
  await settle();
  await end();
  assert.equal(await text(StreamType.STDOUT), "token=***\ns3cs3cr3t");
});

Deno.test("without secrets the chunks read are the chunks batched, not copies", async () => {
  const { stdout, items, end } = setup([]);
  const chunk = new TextEncoder().encode("plain output\n");
  stdout.writeBytes(chunk);
  await settle();
  await end();
  assert.equal(items().length, 1);
  assert.equal(items()[0]!.output.buffer, chunk.buffer, "the same bytes, not a copy");
});
