/**
 * `logs --json` lines (src/cli/event_json.ts) and what GetJob says is
 * stored of a log (storedExtent in src/client/follow.ts), both pure.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  AttemptEndEventSchema,
  type JobAttempt,
  JobSchema,
  JobState,
  OutputBatchEventSchema,
  StreamType,
} from "../../gen/job/v1/job_pb.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { EventJsonEncoder } from "../../src/cli/event_json.ts";
import { storedExtent } from "../../src/client/follow.ts";

const T0 = Date.UTC(2026, 11, 4, 21, 0, 0);
const ID = "01900000-0000-7000-8000-000000000001";
const encoder = new TextEncoder();

Deno.test("logs --json: one line per output chunk, with its sequence, time and stream", () => {
  const json = new EventJsonEncoder(ID);
  const euro = encoder.encode("€\n");
  const batch = create(OutputBatchEventSchema, {
    outputs: [
      { streamType: StreamType.STDOUT, output: encoder.encode("hello\n") },
      { streamType: StreamType.STDERR, output: euro.subarray(0, 2), timestampDeltaMs: 5 },
      { streamType: StreamType.STDERR, output: euro.subarray(2), timestampDeltaMs: 7 },
    ],
    startSequence: 4n,
    endSequence: 6n,
    firstTimestampMs: BigInt(T0),
  });
  assert.deepEqual(json.lines(makeEvent(4n, T0, { case: "outputBatch", value: batch })), [
    {
      jobId: ID,
      sequence: 4,
      timestamp: "2026-12-04T21:00:00.000Z",
      type: "output",
      stream: "stdout",
      text: "hello\n",
    },
    {
      jobId: ID,
      sequence: 5,
      timestamp: "2026-12-04T21:00:00.005Z",
      type: "output",
      stream: "stderr",
      text: "",
    },
    {
      jobId: ID,
      sequence: 6,
      timestamp: "2026-12-04T21:00:00.007Z",
      type: "output",
      stream: "stderr",
      text: "€\n",
    },
  ], "a character cut between two chunks is whole in the later one");
});

Deno.test("logs --json: lifecycle events with their fields", () => {
  const json = new EventJsonEncoder(ID);
  const at = (sequence: bigint) => ({
    jobId: ID,
    sequence: Number(sequence),
    timestamp: new Date(T0).toISOString(),
  });
  assert.deepEqual(
    json.lines(
      makeEvent(1n, T0, {
        case: "processStart",
        value: { $typeName: "job.v1.ProcessStartEvent", pid: 42, startedAt: timestampFromMs(T0) },
      }),
    ),
    [{ ...at(1n), type: "process_start", pid: 42, startedAt: new Date(T0).toISOString() }],
  );
  assert.deepEqual(
    json.lines(makeEvent(2n, T0, {
      case: "processEnd",
      value: {
        $typeName: "job.v1.ProcessEndEvent",
        pid: 42,
        exitCode: 3,
        runDuration: { $typeName: "google.protobuf.Duration", seconds: 1n, nanos: 500_000_000 },
      },
    })),
    [{ ...at(2n), type: "process_end", pid: 42, exitCode: 3, durationMs: 1500 }],
  );
  assert.deepEqual(
    json.lines(makeEvent(3n, T0, {
      case: "processError",
      value: { $typeName: "job.v1.ProcessErrorEvent", errorMessage: "not found" },
    })),
    [{ ...at(3n), type: "process_error", error: "not found" }],
  );
  const notice = create(AttemptEndEventSchema, {
    attempt: 1,
    outcome: "failed",
    exitCode: 3,
    errorMessage: "exited with code 3",
    nextAttempt: 2,
    attemptsAllowed: 3,
    nextNotBefore: timestampFromMs(T0 + 2_000),
  });
  assert.deepEqual(json.lines(makeEvent(4n, T0, { case: "attemptEnd", value: notice })), [{
    ...at(4n),
    type: "attempt_end",
    attempt: 1,
    outcome: "failed",
    exitCode: 3,
    error: "exited with code 3",
    nextAttempt: 2,
    attemptsAllowed: 3,
    nextNotBefore: new Date(T0 + 2_000).toISOString(),
  }]);
});

function job(state: JobState, attempt: number, attempts: Partial<Omit<JobAttempt, "$typeName">>[]) {
  return create(JobSchema, { jobId: ID, state, attempt, attempts });
}

Deno.test("what GetJob says is stored: exact for a running attempt with events", () => {
  assert.deepEqual(storedExtent(job(JobState.SCHEDULED, 0, [])), {
    lastSequence: 0n,
    exact: true,
  });
  assert.deepEqual(
    storedExtent(job(JobState.RUNNING, 1, [{ number: 1, firstSequence: 1n, lastSequence: 9n }])),
    { lastSequence: 9n, exact: true },
  );
  assert.deepEqual(storedExtent(job(JobState.RUNNING, 1, [{ number: 1 }])), {
    lastSequence: 0n,
    exact: true,
  });
  // Attempt 2 has no events yet: attempt 1's notice (sequence 6) is in no range.
  const ended = { number: 1, outcome: "failed", firstSequence: 1n, lastSequence: 5n };
  assert.deepEqual(storedExtent(job(JobState.RUNNING, 2, [ended, { number: 2 }])), {
    lastSequence: 5n,
    exact: false,
  });
  assert.deepEqual(storedExtent(job(JobState.SCHEDULED, 1, [ended])), {
    lastSequence: 5n,
    exact: false,
  });
  assert.deepEqual(
    storedExtent(
      job(JobState.RUNNING, 2, [ended, { number: 2, firstSequence: 7n, lastSequence: 8n }]),
    ),
    { lastSequence: 8n, exact: true },
  );
});
