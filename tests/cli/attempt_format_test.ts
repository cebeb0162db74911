/**
 * How the CLI shows retries (pure): the separator line between attempts,
 * `get`'s attempt lines, retry policy and not-before time, the JSON keys of
 * `get --json` and `list --json`, the table's countdown, and which events of
 * a log belong to one attempt (`logs --attempt`).
 */
import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type AttemptEndEvent,
  AttemptEndEventSchema,
  type Job,
  type JobEvent,
  JobEventSchema,
  JobSchema,
  JobState,
} from "../../gen/job/v1/job_pb.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import {
  attemptEndText,
  attemptSeparator,
  durationText,
  exitCodeRangesText,
} from "../../src/cli/attempt_format.ts";
import {
  describeJob,
  describeLifecycleEvent,
  formatJobTable,
  jobDetails,
  summarizeJob,
} from "../../src/cli/job_format.ts";
import { attemptExitCode, attemptGate, attemptSpan } from "../../src/cli/logs.ts";
import { UsageError } from "../../src/cli/parse.ts";

const T0 = Date.UTC(2025, 0, 2, 3, 4, 5);
const ID = "01900000-0000-7000-8000-000000000001";

function notice(fields: Partial<Omit<AttemptEndEvent, "$typeName">>): AttemptEndEvent {
  return create(AttemptEndEventSchema, {
    attempt: 1,
    outcome: "failed",
    exitCode: 1,
    errorMessage: "exited with code 1",
    nextAttempt: 2,
    attemptsAllowed: 4,
    ...fields,
  });
}

function noticeAt(eventMs: number, fields: Partial<Omit<AttemptEndEvent, "$typeName">>): JobEvent {
  return makeEvent(7n, eventMs, { case: "attemptEnd", value: notice(fields) });
}

Deno.test("the separator says which attempt comes next, after what, and when", () => {
  const cases: [Partial<Omit<AttemptEndEvent, "$typeName">>, string][] = [
    [{ nextNotBefore: timestampFromMs(T0 + 8_000) }, "attempt 2 of 4 after exit 1, in 8 s"],
    [
      {
        outcome: "timed_out",
        exitCode: 124,
        errorMessage: "timed out after 5 s",
        nextAttempt: 3,
        nextNotBefore: timestampFromMs(T0 + 15_400),
      },
      "attempt 3 of 4 after a timeout, in 15 s",
    ],
    [
      {
        outcome: "lost",
        exitCode: 0,
        errorMessage: "its lease ran out: the worker died or lost the server",
        attemptsAllowed: 3,
      },
      "attempt 2 of 3 after a lost worker",
    ],
    [
      { exitCode: 0, errorMessage: "the server refused the job's events: too big" },
      "attempt 2 of 4 after the server refused the job's events: too big",
    ],
    [
      { exitCode: 137, errorMessage: "killed by SIGKILL", nextNotBefore: timestampFromMs(T0) },
      "attempt 2 of 4 after exit 137 (killed by SIGKILL)",
    ],
    [{ exitCode: 0, errorMessage: "" }, "attempt 2 of 4 after a failure"],
    // Under half a second rounds to no wait; long waits in minutes and hours.
    [{ nextNotBefore: timestampFromMs(T0 + 400) }, "attempt 2 of 4 after exit 1"],
    [{ nextNotBefore: timestampFromMs(T0 + 1_500) }, "attempt 2 of 4 after exit 1, in 2 s"],
    [{ nextNotBefore: timestampFromMs(T0 + 300_000) }, "attempt 2 of 4 after exit 1, in 5 min"],
    [{ nextNotBefore: timestampFromMs(T0 + 86_400_000) }, "attempt 2 of 4 after exit 1, in 24 h"],
    // Beyond the policy's count (a lost worker's extra attempt, or after a redrive).
    [
      {
        attempt: 4,
        nextAttempt: 5,
        attemptsAllowed: 3,
        nextNotBefore: timestampFromMs(T0 + 1_000),
      },
      "attempt 5 after exit 1, in 1 s",
    ],
  ];
  for (const [fields, text] of cases) {
    assert.equal(attemptSeparator(noticeAt(T0, fields)), `airunner: ${text}`);
  }
  assert.equal(
    attemptEndText(notice({ nextNotBefore: timestampFromMs(T0 + 8_000) }), undefined),
    "attempt 2 of 4 after exit 1",
    "no event time: no wait",
  );
  const output = makeEvent(3n, T0, {
    case: "output",
    value: { $typeName: "job.v1.OutputEvent", output: new Uint8Array([104]) },
  });
  assert.equal(attemptSeparator(output), undefined, "other events print no separator");
  assert.equal(
    describeLifecycleEvent(noticeAt(T0, { nextNotBefore: timestampFromMs(T0 + 8_000) })),
    "[7] ATTEMPT_END attempt 2 of 4 after exit 1, in 8 s",
    "monitor's plain line",
  );
});

Deno.test("exit-code ranges and delays read as the retry flags take them", () => {
  assert.equal(
    exitCodeRangesText([{ first: 1, last: 1 }, { first: 2, last: 2 }, { first: 75, last: 78 }]),
    "1,2,75-78",
  );
  assert.deepEqual(
    [100, 1_000, 1_500, 300_000, 90_500, 5_400_000, 86_400_000].map(durationText),
    ["100ms", "1s", "1.5s", "5m", "1m30.5s", "1h30m", "24h"],
  );
});

type JobInit = MessageInitShape<typeof JobSchema>;

/** A job retried twice: attempt 1 failed, 2 was lost, 3 waits out its backoff. */
function retriedJob(overrides: JobInit = {}): Job {
  return create(JobSchema, {
    jobId: ID,
    queue: "default",
    state: JobState.SCHEDULED,
    attempt: 2,
    createdAt: timestampFromMs(T0),
    updatedAt: timestampFromMs(T0 + 20_000),
    notBefore: timestampFromMs(T0 + 28_000),
    jobParams: {
      command: "./flaky.sh",
      rerunOf: "01900000-0000-7000-8000-000000000000",
      retry: {
        maxRetries: 3,
        retryOnExitCodes: [{ first: 1, last: 2 }, { first: 75, last: 78 }],
        minDelayMs: 5_000n,
      },
    },
    attempts: [
      {
        number: 1,
        worker: "w1",
        startedAt: timestampFromMs(T0 + 1_000),
        endedAt: timestampFromMs(T0 + 4_000),
        outcome: "failed",
        exitCode: 1,
        errorMessage: "exited with code 1",
        firstSequence: 1n,
        lastSequence: 6n,
      },
      {
        number: 2,
        worker: "w2",
        startedAt: timestampFromMs(T0 + 10_000),
        endedAt: timestampFromMs(T0 + 20_000),
        outcome: "lost",
        errorMessage: "its lease ran out: the worker died or lost the server",
      },
    ],
    ...overrides,
  } as JobInit);
}

Deno.test("get shows each attempt, the not-before time, the rerun link and the retry policy", () => {
  const text = describeJob(retriedJob(), T0 + 20_000, false);
  const lines = text.split("\n");
  const line = (key: string) => lines.find((l) => l.startsWith(`${key}:`));
  const value = (key: string) => line(key)?.slice(`${key}:`.length).trim();
  assert.equal(value("next attempt"), "not before 2025-01-02T03:04:33.000Z (in 8s)");
  assert.equal(value("rerun of"), "01900000-0000-7000-8000-000000000000");
  assert.equal(value("retries"), "3");
  assert.equal(value("retry on"), "1-2,75-78");
  assert.equal(value("retry delay"), "5s..5m");
  assert.equal(value("retry on timeout"), "yes");
  assert.equal(
    value("attempt 1"),
    "failed, exit 1, on w1, 2025-01-02T03:04:06.000Z for 3s, events 1..6",
  );
  assert.equal(
    value("attempt 2"),
    "lost, its lease ran out: the worker died or lost the server, on w2, 2025-01-02T03:04:15.000Z for 10s, no events",
  );
  assert.equal(line("failure"), undefined, "no failure reason yet");
  // The values line up in one column.
  assert.equal(new Set(lines.map((l) => l.search(/(?<=: +)\S/))).size, 1, text);

  const running = retriedJob({
    state: JobState.RUNNING,
    attempts: [{ number: 1, startedAt: timestampFromMs(T0), firstSequence: 1n, lastSequence: 3n }],
  });
  running.notBefore = undefined;
  const runningText = describeJob(running, T0 + 2_000, false);
  assert.match(
    runningText,
    /^attempt 1: +running, 2025-01-02T03:04:05\.000Z for 2s so far, events 1\.\.3$/m,
  );
  assert.doesNotMatch(runningText, /^next attempt:/m);

  const failed = retriedJob({
    state: JobState.FAILED,
    failureReason: "exhausted",
    jobParams: { command: "x", retry: { maxRetries: 1, noRetryOnTimeout: true } },
  });
  failed.notBefore = undefined;
  const failedText = describeJob(failed, T0, false);
  assert.match(
    failedText,
    /^failure: +exhausted \(every attempt its retry policy allows failed\)$/m,
  );
  assert.match(failedText, /^retry on: +any non-zero exit but 126, 127$/m);
  assert.match(failedText, /^retry delay: +1s\.\.5m$/m);
  assert.match(failedText, /^retry on timeout: +no$/m);

  const plain = create(JobSchema, { jobId: ID, queue: "q", jobParams: { command: "true" } });
  assert.doesNotMatch(describeJob(plain, T0, false), /retr|attempt \d|rerun|failure/);
});

Deno.test("get --json: attempts, notBefore, failureReason, rerunOf and retry", () => {
  const d = jobDetails(retriedJob(), false);
  assert.deepEqual(d.attempts, [
    {
      number: 1,
      worker: "w1",
      startedAt: "2025-01-02T03:04:06.000Z",
      endedAt: "2025-01-02T03:04:09.000Z",
      outcome: "failed",
      exitCode: 1,
      error: "exited with code 1",
      firstSequence: 1,
      lastSequence: 6,
    },
    {
      number: 2,
      worker: "w2",
      startedAt: "2025-01-02T03:04:15.000Z",
      endedAt: "2025-01-02T03:04:25.000Z",
      outcome: "lost",
      exitCode: null,
      error: "its lease ran out: the worker died or lost the server",
      firstSequence: null,
      lastSequence: null,
    },
  ]);
  assert.equal(d.notBefore, "2025-01-02T03:04:33.000Z");
  assert.equal(d.failureReason, null);
  assert.equal(d.rerunOf, "01900000-0000-7000-8000-000000000000");
  assert.deepEqual(d.retry, {
    maxRetries: 3,
    retryOn: "1-2,75-78",
    minDelayMs: 5_000,
    maxDelayMs: 300_000,
    retryOnTimeout: true,
  });
  const plain = jobDetails(create(JobSchema, { jobId: ID, jobParams: { command: "x" } }), false);
  assert.deepEqual(
    [plain.attempts, plain.notBefore, plain.failureReason, plain.rerunOf, plain.retry],
    [[], null, null, null, null],
  );
  const running = jobDetails(
    create(JobSchema, { jobId: ID, attempts: [{ number: 1, worker: "", exitCode: 0 }] }),
    false,
  );
  assert.deepEqual(running.attempts[0], {
    number: 1,
    worker: null,
    startedAt: null,
    endedAt: null,
    outcome: null,
    exitCode: null,
    error: null,
    firstSequence: null,
    lastSequence: null,
  });
  // The keys scripts already use stay, in their order; the new ones follow.
  assert.deepEqual(Object.keys(summarizeJob(retriedJob())), [
    "id",
    "queue",
    "state",
    "command",
    "created",
    "exitCode",
    "attempt",
    "owner",
    "repository",
    "startedAt",
    "completedAt",
    "notBefore",
    "failureReason",
    "priority",
    "waitingFor",
  ]);
  const failed = summarizeJob(retriedJob({ state: JobState.FAILED, failureReason: "worker_lost" }));
  assert.equal(failed.failureReason, "worker_lost");
});

Deno.test("list's table shows how long a job waits out its backoff", () => {
  const table = formatJobTable([retriedJob()], T0 + 20_000);
  const [header, row] = table.split("\n");
  assert.match(header!, /^ID +QUEUE +STATE +COMMAND +AGE +DURATION +EXIT$/);
  assert.match(row!, / scheduled \(retry in 8s\) +\.\/flaky\.sh /);
  assert.doesNotMatch(formatJobTable([retriedJob()], T0 + 30_000), /retry in/, "once due");
});

/** An output event at `sequence` (the store's number). */
function output(sequence: bigint): JobEvent {
  return create(JobEventSchema, {
    sequence,
    eventData: { case: "output", value: { output: new TextEncoder().encode(`${sequence}\n`) } },
  });
}

function processStart(sequence: bigint): JobEvent {
  return create(JobEventSchema, {
    sequence,
    eventData: { case: "processStart", value: { pid: 1 } },
  });
}

Deno.test("logs --attempt finds an attempt's events and stops at its end", () => {
  const job = retriedJob();
  assert.deepEqual(attemptSpan(job, 1), { number: 1, fromSequence: 1n, lastSequence: 6n });
  assert.equal(attemptSpan(job, 2), undefined, "an attempt without events prints nothing");
  assert.throws(() => attemptSpan(job, 3), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.message, `--attempt: job ${ID} has no attempt 3 (it has attempts 1-2)`);
    return true;
  });
  // By number, not position: a job from before the upgrade lists only its later attempts.
  const gappy = retriedJob({
    attempt: 4,
    attempts: [{ number: 4, outcome: "failed", firstSequence: 9n, lastSequence: 12n }],
  });
  assert.deepEqual(attemptSpan(gappy, 4), { number: 4, fromSequence: 9n, lastSequence: 12n });
  assert.throws(() => attemptSpan(gappy, 1), /has no attempt 1 \(it has attempt 4\)/);
  assert.throws(
    () => attemptSpan(create(JobSchema, { jobId: ID }), 1),
    /has no attempts yet/,
  );

  const ended = attemptGate({ number: 1, fromSequence: 1n, lastSequence: 6n });
  assert.deepEqual(ended(processStart(1n)), { print: false, stop: false });
  assert.deepEqual(ended(output(2n)), { print: true, stop: false });
  assert.deepEqual(ended(output(6n)), { print: true, stop: true });
  assert.deepEqual(ended(output(8n)), { print: false, stop: true }, "past its last");

  // Running, with no events yet: they come after the earlier attempts' and their notices.
  const running = retriedJob({
    state: JobState.RUNNING,
    attempts: [...retriedJob().attempts, { number: 3, worker: "w3" }],
  });
  const span = attemptSpan(running, 3)!;
  assert.deepEqual(span, { number: 3, fromSequence: 7n, lastSequence: undefined });
  const open = attemptGate(span);
  assert.deepEqual(
    open(noticeAt(T0, { attempt: 2, nextAttempt: 3 })),
    { print: false, stop: false },
    "an earlier attempt's notice is skipped",
  );
  assert.deepEqual(open(processStart(9n)), { print: false, stop: false });
  assert.deepEqual(open(output(10n)), { print: true, stop: false });
  assert.deepEqual(open(noticeAt(T0, { attempt: 3, nextAttempt: 4 })), {
    print: false,
    stop: true,
  });
  assert.deepEqual(
    attemptGate(span)(output(10n)),
    { print: true, stop: false },
    "a fresh gate has seen no start",
  );
  const handedBack = attemptGate(span);
  handedBack(processStart(9n));
  assert.deepEqual(handedBack(processStart(20n)), { print: false, stop: true }, "a new process");
});

Deno.test("logs -f --attempt exits with the attempt's code, or the job's for its last", () => {
  const job = retriedJob({
    attempts: [
      { number: 1, outcome: "failed", exitCode: 3 },
      { number: 2, outcome: "timed_out", exitCode: 124 },
      { number: 3, outcome: "lost" },
      { number: 4, outcome: "failed", exitCode: 300 },
      { number: 5, outcome: "completed" },
    ],
  });
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => attemptExitCode(job, n)), [3, 124, 1, 1, 0]);
  const finished = retriedJob({
    state: JobState.FAILED,
    result: { exitCode: 7 },
    attempts: [{ number: 1, outcome: "failed", exitCode: 3 }, {
      number: 2,
      outcome: "failed",
      exitCode: 7,
    }],
  });
  assert.deepEqual([1, 2].map((n) => attemptExitCode(finished, n)), [3, 7]);
});
