/**
 * The retry policy's rules (src/store/retry_policy.ts), without a store:
 * which ended attempts retry, the budgets, and the backoff's bounds.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { JobResultSchema, RetryPolicySchema } from "../../gen/job/v1/job_pb.ts";
import {
  attemptBudget,
  DEFAULT_RETRY_MAX_DELAY_MS,
  DEFAULT_RETRY_MIN_DELAY_MS,
  effectivePolicy,
  isRetryableResult,
  LOST_WORKER_ATTEMPTS,
  lostWorkerBudget,
  retryDelayMs,
} from "../../src/store/retry_policy.ts";

const failed = (exitCode: number, timedOut = false) =>
  create(JobResultSchema, { success: false, exitCode, timedOut });

Deno.test("without a list, every non-zero exit retries but 126 and 127", () => {
  const policy = effectivePolicy(create(RetryPolicySchema, { maxRetries: 3 }));
  for (const code of [1, 2, 125, 128, 137, 255]) assert.ok(isRetryableResult(policy, failed(code)));
  for (const code of [126, 127]) assert.ok(!isRetryableResult(policy, failed(code)), `${code}`);
  assert.ok(!isRetryableResult(policy, create(JobResultSchema, { success: true })));
});

Deno.test("a list retries its codes and ranges only", () => {
  const policy = effectivePolicy(create(RetryPolicySchema, {
    maxRetries: 2,
    retryOnExitCodes: [{ first: 1, last: 2 }, { first: 75, last: 78 }],
  }));
  for (const code of [1, 2, 75, 76, 78]) {
    assert.ok(isRetryableResult(policy, failed(code)), `${code}`);
  }
  for (const code of [3, 74, 79, 127]) {
    assert.ok(!isRetryableResult(policy, failed(code)), `${code}`);
  }
});

Deno.test("a timeout retries unless the policy says no, whatever its exit code", () => {
  const retrying = effectivePolicy(
    create(RetryPolicySchema, { maxRetries: 1, retryOnExitCodes: [{ first: 9, last: 9 }] }),
  );
  assert.ok(isRetryableResult(retrying, failed(124, true)));
  const not = effectivePolicy(create(RetryPolicySchema, { maxRetries: 1, noRetryOnTimeout: true }));
  assert.ok(!isRetryableResult(not, failed(124, true)));
  // 124 from the command itself is an ordinary exit code.
  assert.ok(isRetryableResult(not, failed(124)));
});

Deno.test("budgets: retries + 1 attempts; lost workers get at least 3", () => {
  const none = effectivePolicy(undefined);
  assert.equal(attemptBudget(none), 1);
  assert.equal(lostWorkerBudget(none), LOST_WORKER_ATTEMPTS);
  const many = effectivePolicy(create(RetryPolicySchema, { maxRetries: 5 }));
  assert.equal(attemptBudget(many), 6);
  assert.equal(lostWorkerBudget(many), 6);
});

Deno.test("delays double from the minimum to the maximum, within [cap / 2, cap] with cap = min × 2^(n+1)", () => {
  const policy = effectivePolicy(
    create(RetryPolicySchema, { maxRetries: 9, minDelayMs: 5_000n, maxDelayMs: 600_000n }),
  );
  for (const job of ["a", "b", "c", "d"]) {
    for (let retry = 0; retry < 9; retry++) {
      const cap = Math.min(600_000, 5_000 * 2 ** (retry + 1));
      const delay = retryDelayMs(policy, job, retry);
      assert.ok(delay >= Math.max(5_000, cap / 2) && delay <= cap, `${job} #${retry}: ${delay}`);
      assert.equal(
        retryDelayMs(policy, job, retry),
        delay,
        "the same job and retry: the same delay",
      );
    }
  }
  // Jitter spreads jobs apart, from the first retry on.
  for (const retry of [0, 4]) {
    const spread = new Set(
      ["a", "b", "c", "d", "e", "f"].map((j) => retryDelayMs(policy, j, retry)),
    );
    assert.ok(spread.size > 1, `retry ${retry}: ${[...spread]}`);
  }
});

Deno.test("unset delays take the defaults", () => {
  const policy = effectivePolicy(create(RetryPolicySchema, { maxRetries: 1 }));
  assert.equal(policy.minDelayMs, DEFAULT_RETRY_MIN_DELAY_MS);
  assert.equal(policy.maxDelayMs, DEFAULT_RETRY_MAX_DELAY_MS);
  const first = retryDelayMs(policy, "x", 0);
  assert.ok(
    first >= DEFAULT_RETRY_MIN_DELAY_MS && first <= 2 * DEFAULT_RETRY_MIN_DELAY_MS,
    `${first}`,
  );
});
