import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { extensionIntervalMs, keepLease } from "../../src/worker/lease_keeper.ts";
import { isRetryable } from "../../src/worker/worker_api.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { memoryLog } from "../support/memory_log.ts";

Deno.test("the lease is extended every third of the visibility timeout", async () => {
  const clock = new FakeClock();
  const done = new AbortController();
  let extensions = 0;
  const keeping = keepLease({
    extend: () => {
      extensions++;
      return Promise.resolve();
    },
    isRetryable,
    visibilityTimeoutMs: 60_000,
    clock,
    logger: memoryLog().logger,
    signal: done.signal,
    onLost: () => assert.fail("not lost"),
  });
  assert.equal(extensionIntervalMs(60_000), 20_000);
  await clock.advance(19_999);
  assert.equal(extensions, 0);
  await clock.advance(1);
  assert.equal(extensions, 1);
  await clock.advance(20_000);
  assert.equal(extensions, 2);
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
