import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  backoffDelayMs,
  DEFAULT_BACKOFF,
  isTransient,
  retry,
  TRANSIENT_CODES,
  transientCodes,
} from "../src/retry.ts";
import { FakeClock, settle } from "./support/fake_clock.ts";

Deno.test("backoff grows exponentially within [cap/2, cap] and stops at the maximum", () => {
  assert.equal(backoffDelayMs(0, DEFAULT_BACKOFF, () => 0), 50);
  assert.equal(backoffDelayMs(0, DEFAULT_BACKOFF, () => 0.999999), 100);
  assert.equal(backoffDelayMs(3, DEFAULT_BACKOFF, () => 0), 400);
  assert.equal(backoffDelayMs(30, DEFAULT_BACKOFF, () => 0.999999), 5000);
  assert.equal(backoffDelayMs(30, DEFAULT_BACKOFF, () => 0), 2500);
});

Deno.test("backoff follows another policy, uncapped when its maximum is infinite", () => {
  const policy = { initialMs: 250, maxMs: Number.POSITIVE_INFINITY, multiplier: 2 };
  assert.equal(backoffDelayMs(0, policy, () => 0.999999), 250);
  assert.equal(backoffDelayMs(2, policy, () => 0), 500);
  assert.equal(backoffDelayMs(10, policy, () => 0), 128_000);
});

const unavailable = () => new ConnectError("down", Code.Unavailable);

Deno.test("transient errors: the shared codes, plain errors as unknown, aborts as canceled", () => {
  assert.ok(isTransient(unavailable()));
  assert.ok(isTransient(new ConnectError("slow", Code.DeadlineExceeded)));
  assert.ok(isTransient(new ConnectError("restarting", Code.Aborted)));
  assert.ok(isTransient(new Error("fetch failed")));
  assert.ok(!isTransient(new ConnectError("lease lost", Code.FailedPrecondition)));
  assert.ok(!isTransient(new ConnectError("full", Code.ResourceExhausted)));
  assert.ok(!isTransient(new DOMException("stopped", "AbortError")));
});

Deno.test("transientCodes adds and removes codes without changing the shared set", () => {
  const lease = transientCodes({ adding: [Code.ResourceExhausted] });
  const follow = transientCodes({ removing: [Code.DeadlineExceeded] });
  assert.ok(isTransient(new ConnectError("full", Code.ResourceExhausted), lease));
  assert.ok(!isTransient(new ConnectError("slow", Code.DeadlineExceeded), follow));
  assert.ok(TRANSIENT_CODES.has(Code.DeadlineExceeded));
  assert.ok(!TRANSIENT_CODES.has(Code.ResourceExhausted));
});

Deno.test("retry tries again after transient failures, waiting the backoff on the clock", async () => {
  const clock = new FakeClock();
  const waits: number[] = [];
  let calls = 0;
  const done = retry(() => {
    calls++;
    return calls <= 2 ? Promise.reject(unavailable()) : Promise.resolve("ok");
  }, { clock, delayMs: (n) => 100 * (n + 1), onRetry: (_, ms) => waits.push(ms) });
  await settle();
  assert.equal(calls, 1);
  await clock.advance(99);
  assert.equal(calls, 1);
  await clock.advance(1);
  assert.equal(calls, 2);
  await clock.advance(200);
  assert.equal(await done, "ok");
  assert.equal(calls, 3);
  assert.deepEqual(waits, [100, 200]);
});

Deno.test("retry gives up at once on a failure that is not retryable", async () => {
  let calls = 0;
  await assert.rejects(
    retry(() => {
      calls++;
      return Promise.reject(new ConnectError("no such job", Code.NotFound));
    }, { clock: new FakeClock() }),
    /no such job/,
  );
  assert.equal(calls, 1);
});

Deno.test("retry stops after maxAttempts tries and throws the last failure", async () => {
  const attempts: number[] = [];
  await assert.rejects(
    retry((attempt) => {
      attempts.push(attempt);
      return Promise.reject(new ConnectError(`try ${attempt}`, Code.Unavailable));
    }, { maxAttempts: 3, clock: { sleep: () => Promise.resolve() } }),
    /try 2/,
  );
  assert.deepEqual(attempts, [0, 1, 2]);
});

Deno.test("retry retries values that ask for it and returns the last try's value", async () => {
  const sleeps: number[] = [];
  const clock = { sleep: (ms: number) => (sleeps.push(ms), Promise.resolve()) };
  const value = await retry((attempt) => Promise.resolve(attempt), {
    retryResult: (n) => n < 5,
    maxAttempts: 3,
    delayMs: (n) => n,
    clock,
  });
  assert.equal(value, 2);
  assert.deepEqual(sleeps, [0, 1]);
  assert.equal(
    await retry((attempt) => Promise.resolve(attempt), { retryResult: (n) => n < 1, clock }),
    1,
  );
});

Deno.test("an abort cuts the wait short and ends retrying with the last failure", async () => {
  const clock = new FakeClock();
  const stop = new AbortController();
  let calls = 0;
  const done = retry(() => {
    calls++;
    return Promise.reject(new ConnectError(`failure ${calls}`, Code.Unavailable));
  }, { clock, signal: stop.signal });
  await settle();
  assert.equal(clock.pendingSleeps, 1);
  stop.abort();
  await assert.rejects(done, /failure 1/);
  assert.equal(calls, 1);
  assert.equal(clock.pendingSleeps, 0);
});

Deno.test("a failure after the abort is thrown without a wait", async () => {
  const clock = new FakeClock();
  const stop = new AbortController();
  const done = retry(() => {
    stop.abort();
    return Promise.reject(unavailable());
  }, { clock, signal: stop.signal, onRetry: () => assert.fail("no retry after an abort") });
  await assert.rejects(done, /down/);
  assert.equal(clock.pendingSleeps, 0);
});

Deno.test("an abort during the wait after a value that asks for a retry returns that value", async () => {
  const clock = new FakeClock();
  const stop = new AbortController();
  const done = retry(() => Promise.resolve("unfinished"), {
    clock,
    signal: stop.signal,
    retryResult: () => true,
  });
  await settle();
  stop.abort();
  assert.equal(await done, "unfinished");
});
