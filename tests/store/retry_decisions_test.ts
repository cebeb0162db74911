/**
 * The lifecycle's retry decisions (src/store/lifecycle.ts with
 * retry_policy.ts), without a store: when a failed attempt comes back and
 * when, when the job ends exhausted, how lost workers count, and redrive.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { JobResultSchema, JobState, RetryPolicySchema } from "../../gen/job/v1/job_pb.ts";
import {
  decideCancel,
  decideCompletion,
  decideExpiry,
  decideLease,
  decideRedrive,
  type JobView,
} from "../../src/store/lifecycle.ts";
import { JobNotRedrivableError, LeaseLostError } from "../../src/store/errors.ts";

const NOW = 1_800_000_000_000;
const JOB = "01900000-0000-7000-8000-000000000001";

/** Attempt `attempt` running on a live lease, with 3 retries of 8 s..60 s. */
function running(over: Partial<JobView> = {}): JobView {
  return {
    jobId: JOB,
    queue: "q",
    state: JobState.RUNNING,
    attempt: 1,
    leaseExpiresAtMs: NOW + 1_000,
    cancelReason: "",
    result: undefined,
    retry: create(RetryPolicySchema, { maxRetries: 3, minDelayMs: 8_000n, maxDelayMs: 60_000n }),
    notBeforeMs: 0,
    usedAttempts: 0,
    lostAttempts: 0,
    failureReason: "",
    ...over,
  };
}

const exit = (exitCode: number, timedOut = false) =>
  create(JobResultSchema, { jobId: JOB, success: exitCode === 0, exitCode, timedOut });

Deno.test("a retryable failure with attempts left waits its backoff, SCHEDULED, and says so", () => {
  const first = decideCompletion(running(), { attempt: 1 }, exit(1), NOW);
  assert.ok(first.kind === "reschedule");
  assert.equal(first.state, JobState.SCHEDULED);
  const firstWait = first.notBeforeMs - NOW;
  assert.ok(
    firstWait >= 8_000 && firstWait <= 16_000,
    `the first retry waits min..2×min: ${firstWait}`,
  );
  assert.equal(first.readyAtMs, first.notBeforeMs, "once due, it goes ahead of newer work");
  assert.equal(first.usedAttempts, 1);
  assert.equal(first.attemptEnd.outcome, "failed");
  assert.equal(first.attemptEnd.exitCode, 1);
  assert.equal(first.notice?.attempt, 1);
  assert.equal(first.notice?.nextAttempt, 2);
  assert.equal(first.notice?.attemptsAllowed, 4);
  assert.equal(timestampMs(first.notice!.nextNotBefore!), first.notBeforeMs);
  const second = decideCompletion(
    running({ attempt: 2, usedAttempts: 1 }),
    { attempt: 2 },
    exit(1),
    NOW,
  );
  assert.ok(second.kind === "reschedule");
  const wait = second.notBeforeMs - NOW;
  assert.ok(wait >= 16_000 && wait <= 32_000, `${wait}`);
});

Deno.test("backoff doubles up to its maximum, with jitter within [cap / 2, cap], cap = min × 2^(n+1)", () => {
  for (let used = 0; used < 12; used++) {
    const d = decideCompletion(
      running({
        attempt: used + 1,
        usedAttempts: used,
        retry: create(RetryPolicySchema, {
          maxRetries: 50,
          minDelayMs: 1_000n,
          maxDelayMs: 20_000n,
        }),
      }),
      { attempt: used + 1 },
      exit(1),
      NOW,
    );
    assert.ok(d.kind === "reschedule");
    const cap = Math.min(20_000, 1_000 * 2 ** (used + 1));
    const wait = d.notBeforeMs - NOW;
    assert.ok(
      wait >= Math.max(1_000, cap / 2) && wait <= cap,
      `retry ${used}: ${wait} not in [${cap / 2}, ${cap}]`,
    );
  }
});

Deno.test("the last attempt's failure ends the job FAILED, exhausted, saying so", () => {
  const last = decideCompletion(
    running({ attempt: 4, usedAttempts: 3 }),
    { attempt: 4 },
    exit(1),
    NOW,
  );
  assert.ok(last.kind === "finish");
  assert.equal(last.state, JobState.FAILED);
  assert.equal(last.failureReason, "exhausted");
  assert.equal(last.result.errorMessage, "4 of 4 attempts failed; last exit 1");
  assert.equal(last.result.exitCode, 1);
  assert.equal(last.attemptEnd?.attempt, 4);
});

Deno.test("attempt N of M counts what the budget has left, after a hand-back or a redrive", () => {
  // --retries 3; attempt 1 was handed back (no budget used), attempt 2 fails: attempts 3..5 remain.
  const afterHandBack = decideCompletion(
    running({ attempt: 2, usedAttempts: 0 }),
    { attempt: 2 },
    exit(1),
    NOW,
  );
  assert.ok(afterHandBack.kind === "reschedule");
  assert.equal(afterHandBack.notice?.nextAttempt, 3);
  assert.equal(afterHandBack.notice?.attemptsAllowed, 5);
  // Redriven after 4 attempts: attempt 5 is the first of a fresh budget of 4, so up to 8.
  const afterRedrive = decideCompletion(
    running({ attempt: 5, usedAttempts: 0 }),
    { attempt: 5 },
    exit(1),
    NOW,
  );
  assert.ok(afterRedrive.kind === "reschedule");
  assert.equal(afterRedrive.notice?.attemptsAllowed, 8);
});

Deno.test("lost workers use attempts but not backoff, and the exhausted message names them", () => {
  // Two lost workers, then the first failure: it waits the first retry's backoff, min..2×min.
  const failed = decideCompletion(
    running({ attempt: 3, usedAttempts: 2, lostAttempts: 2 }),
    { attempt: 3 },
    exit(1),
    NOW,
  );
  assert.ok(failed.kind === "reschedule");
  const wait = failed.notBeforeMs - NOW;
  assert.ok(wait >= 8_000 && wait <= 16_000, `${wait}`);
  const last = decideCompletion(
    running({ attempt: 4, usedAttempts: 3, lostAttempts: 2 }),
    { attempt: 4 },
    exit(1),
    NOW,
  );
  assert.ok(last.kind === "finish");
  assert.equal(last.result.errorMessage, "4 of 4 attempts failed (2 to lost workers); last exit 1");
});

Deno.test("a code that does not retry, or no retry policy, ends the job at once without a reason", () => {
  for (
    const [v, code] of [[running(), 127], [running(), 126], [
      running({ retry: undefined }),
      1,
    ]] as const
  ) {
    const d = decideCompletion(v, { attempt: 1 }, exit(code), NOW);
    assert.ok(d.kind === "finish");
    assert.equal(d.state, JobState.FAILED);
    assert.equal(d.failureReason, "");
  }
});

Deno.test("only listed exit codes retry when the policy lists some", () => {
  const retry = create(RetryPolicySchema, {
    maxRetries: 2,
    retryOnExitCodes: [{ first: 2, last: 2 }, { first: 75, last: 78 }],
  });
  const kind = (code: number) =>
    decideCompletion(running({ retry }), { attempt: 1 }, exit(code), NOW).kind;
  assert.deepEqual([2, 75, 78].map(kind), ["reschedule", "reschedule", "reschedule"]);
  assert.deepEqual([1, 3, 74, 79].map(kind), ["finish", "finish", "finish", "finish"]);
});

Deno.test("a timeout retries by default, and not with no_retry_on_timeout", () => {
  assert.equal(
    decideCompletion(running(), { attempt: 1 }, exit(124, true), NOW).kind,
    "reschedule",
  );
  const retry = create(RetryPolicySchema, { maxRetries: 3, noRetryOnTimeout: true });
  const d = decideCompletion(running({ retry }), { attempt: 1 }, exit(124, true), NOW);
  assert.equal(d.kind, "finish");
});

Deno.test("a lost lease counts: the third loss ends the job FAILED, worker lost", () => {
  const noPolicy = { retry: undefined };
  const first = decideExpiry(running(noPolicy), NOW + 1_000);
  assert.ok(first.kind === "reschedule");
  assert.equal(first.notBeforeMs, 0, "served again at once");
  const third = decideExpiry(
    running({ ...noPolicy, attempt: 3, usedAttempts: 2, lostAttempts: 2 }),
    NOW + 1_000,
  );
  assert.ok(third.kind === "finish");
  assert.equal(third.state, JobState.FAILED);
  assert.equal(third.failureReason, "worker_lost");
  assert.equal(third.result.errorMessage, "worker lost 3 times");
  const withRetries = decideExpiry(
    running({ attempt: 3, usedAttempts: 2, lostAttempts: 2 }),
    NOW + 1_000,
  );
  assert.equal(
    withRetries.kind,
    "reschedule",
    "3 retries give 4 attempts against lost workers too",
  );
});

Deno.test("nothing leases a job before its backoff ends", () => {
  const waiting = running({ state: JobState.SCHEDULED, notBeforeMs: NOW + 5_000, usedAttempts: 1 });
  assert.deepEqual(decideLease(waiting, { visibilityTimeoutMs: 100 }, NOW + 4_999), {
    kind: "skip",
    reason: "not_due",
  });
  assert.equal(decideLease(waiting, { visibilityTimeoutMs: 100 }, NOW + 5_000).kind, "lease");
});

Deno.test("a cancel during the backoff ends the job CANCELLED at once", () => {
  const waiting = running({ state: JobState.SCHEDULED, notBeforeMs: NOW + 5_000, usedAttempts: 1 });
  const d = decideCancel(waiting, { reason: "enough" }, NOW);
  assert.ok(d.kind === "finish");
  assert.equal(d.state, JobState.CANCELLED);
  assert.equal(d.attemptEnd, undefined, "no attempt was running");
});

Deno.test("the completion that scheduled a retry, sent again, is a resend; an older attempt is refused", () => {
  const waiting = running({ state: JobState.SCHEDULED, notBeforeMs: NOW + 5_000, usedAttempts: 1 });
  assert.deepEqual(decideCompletion(waiting, { attempt: 1 }, exit(1), NOW), { kind: "resend" });
  const next = running({ attempt: 2, usedAttempts: 1 });
  assert.throws(() => decideCompletion(next, { attempt: 1 }, exit(1), NOW), LeaseLostError);
});

Deno.test("redrive puts back a dead letter with a fresh budget, and nothing else", () => {
  const dead = running({ state: JobState.FAILED, failureReason: "exhausted", usedAttempts: 4 });
  assert.deepEqual(decideRedrive(dead, NOW), {
    kind: "redrive",
    state: JobState.SCHEDULED,
    readyAtMs: NOW,
    usedAttempts: 0,
    lostAttempts: 0,
  });
  assert.equal(decideRedrive({ ...dead, failureReason: "worker_lost" }, NOW).kind, "redrive");
  for (
    const v of [{ ...dead, failureReason: "" }, { ...dead, state: JobState.COMPLETED }, running()]
  ) {
    assert.throws(() => decideRedrive(v, NOW), JobNotRedrivableError);
  }
});
