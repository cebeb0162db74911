import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  extensionIntervalMs,
  keepLease,
  MAX_EXTENSION_INTERVAL_MS,
} from "../../src/worker/lease_keeper.ts";
import { isRetryable } from "../../src/worker/worker_api.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { memoryLog } from "../support/memory_log.ts";

const notCancelled = { cancelled: false };

Deno.test("the lease is extended every third of the visibility timeout, at least every 3 s", async () => {
  assert.equal(extensionIntervalMs(6_000), 2_000);
  assert.equal(extensionIntervalMs(60_000), MAX_EXTENSION_INTERVAL_MS);
  const clock = new FakeClock();
  const done = new AbortController();
  let extensions = 0;
  const keeping = keepLease({
    extend: () => {
      extensions++;
      return Promise.resolve(notCancelled);
    },
    isRetryable,
    visibilityTimeoutMs: 6_000,
    clock,
    logger: memoryLog().logger,
    signal: done.signal,
    onLost: () => assert.fail("not lost"),
  });
  await clock.advance(1_999);
  assert.equal(extensions, 0);
  await clock.advance(1);
  assert.equal(extensions, 1);
  // A job may outlive any single lease (SQS caps one at 12 hours): every
  // extension asks for the visibility timeout again, for as long as it runs.
  for (let i = 0; i < 200; i++) await clock.advance(2_000);
  assert.equal(extensions, 201);
  done.abort();
  await keeping;
});

Deno.test("a failed extension is retried; a refused one reports the lease lost", async () => {
  const clock = new FakeClock();
  const done = new AbortController();
  const outcomes = [
    new ConnectError("unreachable", Code.Unavailable),
    new ConnectError("lease lost", Code.FailedPrecondition),
  ];
  let lost: unknown;
  const keeping = keepLease({
    extend: () => Promise.reject(outcomes.shift()),
    isRetryable,
    visibilityTimeoutMs: 3_000,
    clock,
    logger: memoryLog().logger,
    signal: done.signal,
    onLost: (error) => lost = error,
  });
  await clock.advance(1_000);
  assert.equal(outcomes.length, 1, "first extension failed in passing");
  assert.equal(lost, undefined);
  await clock.advance(1_000);
  assert.equal(outcomes.length, 0);
  await keeping;
  assert.equal(ConnectError.from(lost).code, Code.FailedPrecondition);
});

Deno.test("an extension that says cancelled is reported once, and the lease is still kept", async () => {
  const clock = new FakeClock();
  const done = new AbortController();
  let cancels = 0;
  let extensions = 0;
  const keeping = keepLease({
    extend: () => {
      extensions++;
      return Promise.resolve({ cancelled: extensions >= 2 });
    },
    isRetryable,
    visibilityTimeoutMs: 3_000,
    clock,
    logger: memoryLog().logger,
    signal: done.signal,
    onLost: () => assert.fail("not lost"),
    onCancelled: () => cancels++,
  });
  for (let i = 0; i < 4; i++) await clock.advance(1_000);
  assert.equal(extensions, 4);
  assert.equal(cancels, 1);
  done.abort();
  await keeping;
});
