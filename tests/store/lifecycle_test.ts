import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  JobParamsSchema,
  type JobResult,
  JobResultSchema,
  JobState,
} from "../../gen/job/v1/job_pb.ts";
import {
  IdempotencyConflictError,
  JobFinishedError,
  JobMismatchError,
  LeaseLostError,
  QueueMismatchError,
} from "../../src/store/errors.ts";
import { DEFAULT_CANCEL_REASON } from "../../src/store/job_store.ts";
import {
  cancelReasonFor,
  checkLease,
  decideCancel,
  decideCompletion,
  decideEnqueue,
  decideExpiry,
  decideExtend,
  decideHandBack,
  decideLease,
  decidePublish,
  type JobView,
  leaseExpired,
  stateAt,
  WORKER_STOPPED_DETAIL,
} from "../../src/store/lifecycle.ts";

const NOW = 1_000_000;
const JOB = "01900000-0000-7000-8000-000000000000";

function view(fields: Partial<JobView> = {}): JobView {
  return {
    jobId: JOB,
    queue: "q",
    state: JobState.SCHEDULED,
    attempt: 0,
    leaseExpiresAtMs: 0,
    cancelReason: "",
    result: undefined,
    retry: undefined,
    notBeforeMs: 0,
    usedAttempts: 0,
    lostAttempts: 0,
    failureReason: "",
    ...fields,
  };
}

/** A job leased by attempt 2 whose lease ends at NOW + 100. */
const running = (fields: Partial<JobView> = {}) =>
  view({ state: JobState.RUNNING, attempt: 2, leaseExpiresAtMs: NOW + 100, ...fields });
const holder = { attempt: 2 };
const result = (
  fields: { jobId?: string; success?: boolean; exitCode?: number; completedAt?: Timestamp } = {},
): JobResult => create(JobResultSchema, { jobId: JOB, success: true, exitCode: 0, ...fields });

// ---------------------------------------------------------------- time

Deno.test("a lease lasts until its deadline and has run out at it", () => {
  assert.equal(leaseExpired(running(), NOW + 99), false);
  assert.equal(leaseExpired(running(), NOW + 100), true);
  assert.equal(leaseExpired(view({ leaseExpiresAtMs: 1 }), NOW), false, "only a running job");
});

Deno.test("stateAt reads a lease that ran out as what its expiry makes of the job", () => {
  assert.equal(stateAt(running(), NOW), JobState.RUNNING);
  assert.equal(stateAt(running(), NOW + 100), JobState.SCHEDULED);
  assert.equal(stateAt(running({ cancelReason: "x" }), NOW + 100), JobState.CANCELLED);
  assert.equal(stateAt(view({ state: JobState.FAILED }), NOW), JobState.FAILED);
});

// ---------------------------------------------------------------- fence

Deno.test("the fence passes the current attempt while its lease lasts", () => {
  checkLease(running(), holder, NOW + 99);
  assert.deepEqual(decidePublish(running(), holder, NOW), { kind: "publish" });
});

Deno.test("the fence refuses an older or newer attempt", () => {
  assert.throws(
    () => checkLease(running(), { attempt: 1 }, NOW),
    (e) => e instanceof LeaseLostError && /attempt 1 was superseded by attempt 2/.test(e.message),
  );
  assert.throws(() => decidePublish(running(), { attempt: 3 }, NOW), LeaseLostError);
});

Deno.test("the fence refuses a lease that ran out, was handed back, or whose job finished", () => {
  assert.throws(
    () => checkLease(running(), holder, NOW + 100),
    (e) => e instanceof LeaseLostError && /scheduled again/.test(e.message),
  );
  assert.throws(
    () => checkLease(running({ state: JobState.SCHEDULED }), holder, NOW),
    (e) => e instanceof LeaseLostError && /scheduled again/.test(e.message),
  );
  assert.throws(
    () => checkLease(running({ state: JobState.COMPLETED }), holder, NOW),
    (e) => e instanceof LeaseLostError && /has finished/.test(e.message),
  );
  assert.throws(
    () => decidePublish(running({ cancelReason: "x" }), holder, NOW + 100),
    (e) => e instanceof LeaseLostError && /has finished/.test(e.message),
  );
});

// ---------------------------------------------------------------- enqueue

Deno.test("enqueue creates a SCHEDULED job with no attempt yet", () => {
  const params = create(JobParamsSchema, { command: "true" });
  assert.deepEqual(decideEnqueue(undefined, { requestId: "", queue: "q", params }, NOW), {
    kind: "create",
    state: JobState.SCHEDULED,
    attempt: 0,
    notBeforeMs: 0,
  });
  const delayed = create(JobParamsSchema, { command: "true", delayMs: 5_000n });
  assert.deepEqual(
    decideEnqueue(undefined, { requestId: "", queue: "q", params: delayed }, NOW),
    { kind: "create", state: JobState.SCHEDULED, attempt: 0, notBeforeMs: NOW + 5_000 },
    "a delayed start waits from the enqueue",
  );
});

Deno.test("enqueue with a used request_id answers the earlier job, or refuses another job", () => {
  const params = create(JobParamsSchema, { command: "true" });
  const existing = { jobId: JOB, queue: "q", params };
  const again = { requestId: "r", queue: "q", params: create(JobParamsSchema, params) };
  assert.deepEqual(decideEnqueue(existing, again, NOW), { kind: "existing", jobId: JOB });
  assert.throws(
    () => decideEnqueue(existing, { ...again, queue: "other" }, NOW),
    IdempotencyConflictError,
  );
  assert.throws(
    () =>
      decideEnqueue(existing, {
        ...again,
        params: create(JobParamsSchema, { command: "false" }),
      }, NOW),
    IdempotencyConflictError,
  );
});

// ---------------------------------------------------------------- lease

Deno.test("lease starts the next attempt on a waiting job", () => {
  assert.deepEqual(decideLease(view({ attempt: 3 }), { visibilityTimeoutMs: 500 }, NOW), {
    kind: "lease",
    state: JobState.RUNNING,
    attempt: 4,
    leaseExpiresAtMs: NOW + 500,
    lost: undefined,
  });
});

Deno.test("lease takes a running job whose lease ran out, and skips a live one", () => {
  const taken = decideLease(running(), { visibilityTimeoutMs: 500 }, NOW + 100);
  assert.ok(taken.kind === "lease");
  assert.equal(taken.attempt, 3);
  assert.equal(taken.leaseExpiresAtMs, NOW + 600);
  assert.equal(taken.lost?.attemptEnd.outcome, "lost", "the lease that ran out counts as lost");
  assert.equal(taken.lost?.usedAttempts, 1);
  assert.deepEqual(decideLease(running(), { visibilityTimeoutMs: 500 }, NOW), {
    kind: "skip",
    reason: "running",
  });
  assert.deepEqual(
    decideLease(running({ cancelReason: "x" }), { visibilityTimeoutMs: 500 }, NOW),
    { kind: "skip", reason: "running" },
    "a cancelled job keeps running until its worker stops",
  );
});

Deno.test("lease skips a finished job", () => {
  for (const state of [JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED]) {
    assert.deepEqual(decideLease(view({ state }), { visibilityTimeoutMs: 500 }, NOW), {
      kind: "skip",
      reason: "finished",
    });
  }
});

Deno.test("lease ends a job a cancel was asked for instead of running it", () => {
  const waited = decideLease(view({ cancelReason: "stop" }), { visibilityTimeoutMs: 1 }, NOW);
  assert.equal(waited.kind, "finish");
  assert.ok(waited.kind === "finish");
  assert.equal(waited.state, JobState.CANCELLED);
  assert.equal(waited.result.errorMessage, "cancelled: stop");
  assert.equal(waited.result.success, false);
  assert.deepEqual(waited.result.completedAt, timestampFromMs(NOW));

  const expired = decideLease(
    running({ cancelReason: "stop" }),
    { visibilityTimeoutMs: 1 },
    NOW + 100,
  );
  assert.ok(expired.kind === "finish");
  assert.equal(expired.result.errorMessage, `cancelled: stop${WORKER_STOPPED_DETAIL}`);
});

// ---------------------------------------------------------------- extend and hand back

Deno.test("extend moves the lease's end and tells whether the job was cancelled", () => {
  const request = { queue: "q", visibilityTimeoutMs: 300 };
  assert.deepEqual(decideExtend(running(), holder, request, NOW + 50), {
    kind: "extend",
    leaseExpiresAtMs: NOW + 350,
    cancelled: false,
  });
  assert.deepEqual(decideExtend(running({ cancelReason: "x" }), holder, request, NOW), {
    kind: "extend",
    leaseExpiresAtMs: NOW + 300,
    cancelled: true,
  });
});

Deno.test("extend is fenced and checks the queue", () => {
  const request = { queue: "q", visibilityTimeoutMs: 300 };
  assert.throws(() => decideExtend(running(), { attempt: 1 }, request, NOW), LeaseLostError);
  assert.throws(() => decideExtend(running(), holder, request, NOW + 100), LeaseLostError);
  assert.throws(
    () => decideExtend(running(), holder, { ...request, queue: "other" }, NOW),
    QueueMismatchError,
  );
});

Deno.test("extend with no visibility hands the job back", () => {
  assert.deepEqual(
    decideExtend(running(), holder, { queue: "q", visibilityTimeoutMs: 0 }, NOW + 10),
    {
      kind: "handBack",
      release: decideHandBack(running(), holder, NOW + 10),
      cancelled: false,
    },
  );
  const cancelled = decideExtend(
    running({ cancelReason: "x" }),
    holder,
    { queue: "q", visibilityTimeoutMs: -1 },
    NOW,
  );
  assert.ok(cancelled.kind === "handBack" && cancelled.cancelled);
  assert.equal(cancelled.release.kind, "finish");
});

Deno.test("hand back schedules the job again now, or ends a cancelled one", () => {
  const back = decideHandBack(running(), holder, NOW + 5);
  assert.ok(back.kind === "reschedule");
  assert.equal(back.readyAtMs, NOW + 5);
  assert.equal(back.notBeforeMs, 0, "due at once");
  assert.equal(back.usedAttempts, 0, "a hand-back uses no attempt");
  assert.equal(back.attemptEnd.outcome, "handed_back");
  assert.equal(back.notice, undefined, "followers are told nothing");
  const cancelled = decideHandBack(running({ cancelReason: "stop" }), holder, NOW);
  assert.ok(cancelled.kind === "finish");
  assert.equal(cancelled.state, JobState.CANCELLED);
  assert.equal(cancelled.result.errorMessage, `cancelled: stop${WORKER_STOPPED_DETAIL}`);
  assert.throws(() => decideHandBack(running(), { attempt: 1 }, NOW), LeaseLostError);
});

// ---------------------------------------------------------------- expire

Deno.test("expiry keeps a live lease and a job that is not running", () => {
  assert.deepEqual(decideExpiry(running(), NOW + 99), { kind: "keep" });
  assert.deepEqual(decideExpiry(view(), NOW), { kind: "keep" });
  assert.deepEqual(decideExpiry(view({ state: JobState.COMPLETED }), NOW), { kind: "keep" });
});

Deno.test("expiry schedules the job again, ordered by when its lease ended", () => {
  const lost = decideExpiry(running(), NOW + 5_000);
  assert.ok(lost.kind === "reschedule");
  assert.equal(lost.readyAtMs, NOW + 100);
  assert.equal(lost.notBeforeMs, 0);
  assert.deepEqual([lost.usedAttempts, lost.lostAttempts], [1, 1]);
  assert.deepEqual(lost.attemptEnd, {
    attempt: 2,
    outcome: "lost",
    exitCode: 0,
    errorMessage: "its lease ran out: the worker died or lost the server",
    endedAtMs: NOW + 100,
  });
  assert.equal(lost.notice?.nextAttempt, 3);
  // Attempt 1 used no budget (handed back): 3 attempts against lost workers run to attempt 4.
  assert.equal(lost.notice?.attemptsAllowed, 4);
});

Deno.test("expiry ends a cancelled job CANCELLED: its worker stopped before finishing", () => {
  const decision = decideExpiry(running({ cancelReason: "stop" }), NOW + 200);
  assert.ok(decision.kind === "finish");
  assert.equal(decision.state, JobState.CANCELLED);
  assert.equal(decision.result.jobId, JOB);
  assert.equal(decision.result.success, false);
  assert.equal(
    decision.result.errorMessage,
    "cancelled: stop (its worker stopped before finishing)",
  );
  assert.deepEqual(decision.result.completedAt, timestampFromMs(NOW + 200));
});

// ---------------------------------------------------------------- complete

Deno.test("completion ends the job COMPLETED or FAILED by the result", () => {
  const done = decideCompletion(running(), holder, result(), NOW);
  assert.ok(done.kind === "finish");
  assert.equal(done.state, JobState.COMPLETED);
  assert.deepEqual(done.result.completedAt, timestampFromMs(NOW), "stamped when unstamped");
  const failed = decideCompletion(
    running(),
    holder,
    result({ success: false, exitCode: 3, completedAt: timestampFromMs(5) }),
    NOW,
  );
  assert.ok(failed.kind === "finish");
  assert.equal(failed.state, JobState.FAILED);
  assert.equal(failed.result.exitCode, 3);
  assert.deepEqual(failed.result.completedAt, timestampFromMs(5), "the worker's stamp is kept");
});

Deno.test("completion keeps the caller's result untouched", () => {
  const given = result();
  const decision = decideCompletion(running(), holder, given, NOW);
  assert.ok(decision.kind === "finish");
  assert.notEqual(decision.result, given);
  assert.equal(given.completedAt, undefined);
});

Deno.test("completion of a job cancelled while running ends it CANCELLED with the worker's result", () => {
  const decision = decideCompletion(
    running({ cancelReason: "stop" }),
    holder,
    result({ success: false, exitCode: 143 }),
    NOW,
  );
  assert.ok(decision.kind === "finish");
  assert.equal(decision.state, JobState.CANCELLED);
  assert.equal(decision.result.exitCode, 143);
});

Deno.test("completion sent again by the attempt that finished the job is a resend", () => {
  const recorded = result({ completedAt: timestampFromMs(NOW) });
  const finished = running({ state: JobState.COMPLETED, result: recorded });
  assert.deepEqual(decideCompletion(finished, holder, result(), NOW + 1_000), { kind: "resend" });
  assert.throws(
    () => decideCompletion(finished, holder, result({ exitCode: 1 }), NOW),
    LeaseLostError,
    "a different result from the same attempt is refused",
  );
  assert.throws(
    () => decideCompletion(finished, { attempt: 1 }, result(), NOW),
    LeaseLostError,
    "another attempt's completion is no resend",
  );
});

Deno.test("completion is fenced and refuses another job's result", () => {
  assert.throws(() => decideCompletion(running(), { attempt: 1 }, result(), NOW), LeaseLostError);
  assert.throws(() => decideCompletion(running(), holder, result(), NOW + 100), LeaseLostError);
  assert.throws(
    () => decideCompletion(running(), holder, result({ jobId: "another" }), NOW),
    JobMismatchError,
  );
});

// ---------------------------------------------------------------- cancel

Deno.test("cancel ends a waiting job at once", () => {
  const decision = decideCancel(view(), { reason: "not needed" }, NOW);
  assert.ok(decision.kind === "finish");
  assert.equal(decision.state, JobState.CANCELLED);
  assert.equal(decision.cancelReason, "not needed");
  assert.equal(decision.newReason, true);
  assert.equal(decision.result.errorMessage, "cancelled: not needed");
  assert.deepEqual(decision.result.completedAt, timestampFromMs(NOW));
});

Deno.test("cancel marks a running job; a second cancel keeps the first reason", () => {
  assert.deepEqual(decideCancel(running(), { reason: "first" }, NOW), {
    kind: "mark",
    cancelReason: "first",
    newReason: true,
  });
  assert.deepEqual(decideCancel(running({ cancelReason: "first" }), { reason: "again" }, NOW), {
    kind: "mark",
    cancelReason: "first",
    newReason: false,
  });
});

Deno.test("cancel without a reason records the default one", () => {
  assert.equal(cancelReasonFor(""), DEFAULT_CANCEL_REASON);
  assert.equal(cancelReasonFor("why"), "why");
  const decision = decideCancel(running(), { reason: "" }, NOW);
  assert.equal(decision.cancelReason, DEFAULT_CANCEL_REASON);
});

Deno.test("cancel of a job whose lease ran out ends it as a waiting job", () => {
  const decision = decideCancel(running(), { reason: "late" }, NOW + 100);
  assert.ok(decision.kind === "finish");
  assert.equal(decision.result.errorMessage, "cancelled: late");
});

Deno.test("cancel refuses a finished job, naming its state", () => {
  assert.throws(
    () => decideCancel(view({ state: JobState.COMPLETED }), { reason: "" }, NOW),
    (e) => e instanceof JobFinishedError && /\(completed\)/.test(e.message),
  );
  assert.throws(
    () => decideCancel(running({ cancelReason: "x" }), { reason: "" }, NOW + 100),
    (e) => e instanceof JobFinishedError && /\(cancelled\)/.test(e.message),
    "a cancelled job whose lease ran out has ended",
  );
});
