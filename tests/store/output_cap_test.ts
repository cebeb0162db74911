import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { EventType, type JobEvent, OutputItemSchema, StreamType } from "../../gen/job/v1/job_pb.ts";
import { makeEvent, sequenceEvents } from "../../src/protocol/event_sequencing.ts";
import { capOutput, truncationMarkerText } from "../../src/store/output_cap.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function batch(sequence: number, texts: string[]): JobEvent {
  return makeEvent(BigInt(sequence), 1_000, {
    case: "outputBatch",
    value: {
      $typeName: "job.v1.OutputBatchEvent",
      outputs: texts.map((t, i) =>
        create(OutputItemSchema, {
          output: bytes(t),
          streamType: StreamType.STDOUT,
          timestampDeltaMs: i,
        })
      ),
      startSequence: BigInt(sequence),
      endSequence: BigInt(sequence + texts.length - 1),
      firstTimestampMs: 1_000n,
      playbackIntervalMillis: 0,
    },
  });
}

const heartbeat = (sequence: number) =>
  makeEvent(BigInt(sequence), 1_000, {
    case: "heartbeat",
    value: { $typeName: "job.v1.HeartbeatEvent", processAlive: true },
  });

function cap(events: JobEvent[], state: {
  base?: bigint;
  highest?: bigint;
  storedBytes?: number;
  truncated?: boolean;
}, max: number) {
  const full = {
    base: state.base ?? 0n,
    highest: state.highest ?? 0n,
    storedBytes: state.storedBytes ?? 0,
    truncated: state.truncated ?? false,
  };
  return capOutput(sequenceEvents(events, full, 1_000, 1 << 20), full, max);
}

const items = (event: JobEvent | undefined) =>
  event?.eventData.case === "outputBatch"
    ? event.eventData.value.outputs.map((o) => [new TextDecoder().decode(o.output), o.streamType])
    : [];

Deno.test("output cap: the crossing item is cut at the cap and the marker follows it on stderr", () => {
  const out = cap([batch(1, ["abc", "defg", "hi"])], {}, 5);
  assert.deepEqual(items(out.events[0]), [
    ["abc", StreamType.STDOUT],
    ["de", StreamType.STDOUT],
    [truncationMarkerText(5), StreamType.STDERR],
  ]);
  assert.equal(truncationMarkerText(5), "airunner: output truncated after 5 bytes\n");
  const value = out.events[0]!.eventData.value as { startSequence: bigint; endSequence: bigint };
  assert.deepEqual([value.startSequence, value.endSequence], [1n, 3n]);
  assert.equal(out.storedBytes, 5);
  assert.equal(out.truncated, true);
  // Three worker numbers were used, three stored: the base stays.
  assert.deepEqual([out.highest, out.localHighest, out.base], [3n, 3n, 0n]);
  assert.deepEqual(out.after, [{ localEnd: 3n, storedBytes: 5, truncated: true }]);
});

Deno.test("output cap: dropped output moves the base so the next number follows the highest stored", () => {
  const out = cap([batch(4, ["x", "y"]), heartbeat(6), batch(7, ["z"])], {
    base: 10n,
    highest: 13n,
    storedBytes: 5,
    truncated: true,
  }, 5);
  assert.equal(out.events.length, 1);
  assert.equal(out.events[0]!.eventType, EventType.HEARTBEAT);
  assert.equal(out.events[0]!.sequence, 14n);
  assert.deepEqual(out.after, [{ localEnd: 6n, storedBytes: 5, truncated: true }]);
  // The worker's next number, 8, must land at 15.
  assert.equal(out.base + 8n, 15n);
  assert.equal(out.localHighest, 7n);
});

Deno.test("output cap: a legacy OUTPUT event that crosses becomes a batch with the marker", () => {
  const legacy = makeEvent(1n, 2_000, {
    case: "output",
    value: { $typeName: "job.v1.OutputEvent", output: bytes("0123456789") },
  });
  const out = cap([legacy], { storedBytes: 6 }, 8);
  assert.equal(out.events[0]!.eventType, EventType.OUTPUT_BATCH);
  assert.deepEqual(items(out.events[0]), [
    ["01", StreamType.STDOUT],
    [truncationMarkerText(8), StreamType.STDERR],
  ]);
  assert.equal(out.highest, 2n);
  assert.equal(out.base, 1n);
});

Deno.test("output cap: a cap lowered below what is stored keeps nothing more and counts what is stored", () => {
  const out = cap([batch(1, ["abc"])], { storedBytes: 100 }, 10);
  assert.deepEqual(items(out.events[0]), [[truncationMarkerText(10), StreamType.STDERR]]);
  assert.equal(out.storedBytes, 100);
});

Deno.test("output cap: 0 keeps everything and still counts it", () => {
  const out = cap([batch(1, ["abc", "def"])], { storedBytes: 2 ** 40 }, 0);
  assert.deepEqual(items(out.events[0]).map(([t]) => t), ["abc", "def"]);
  assert.equal(out.storedBytes, 2 ** 40 + 6);
  assert.equal(out.truncated, false);
});

Deno.test("output cap: the caller's events are never changed", () => {
  const original = batch(1, ["abcdef"]);
  cap([original], {}, 3);
  assert.deepEqual(items(original), [["abcdef", StreamType.STDOUT]]);
  const value = original.eventData.value as { endSequence: bigint };
  assert.equal(value.endSequence, 1n);
});
