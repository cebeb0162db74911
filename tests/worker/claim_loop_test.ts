import assert from "node:assert/strict";
import { runClaimLoop } from "../../src/worker/claim_loop.ts";
import { FakeClock, settle } from "../support/fake_clock.ts";
import { memoryLog } from "../support/memory_log.ts";

Deno.test("the claim loop never runs more than `concurrency` items at once", async () => {
  const stop = new AbortController();
  let running = 0;
  let peak = 0;
  let handled = 0;
  const queue = Array.from({ length: 12 }, (_, i) => i);
  const asked: number[] = [];
  await runClaimLoop({
    claim: async (max) => {
      asked.push(max);
      await settle();
      const items = queue.splice(0, max);
      if (queue.length === 0 && items.length === 0) stop.abort();
      return items;
    },
    handle: async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      handled++;
    },
    concurrency: 3,
    clock: new FakeClock(),
    logger: memoryLog().logger,
    signal: stop.signal,
  });
  assert.equal(handled, 12);
  assert.equal(peak, 3);
  assert.ok(asked.every((n) => n >= 1 && n <= 3), `asked for ${asked}`);
});

Deno.test("a failing claim backs off instead of spinning", async () => {
  const clock = new FakeClock();
  const stop = new AbortController();
  let claims = 0;
  const log = memoryLog();
  const loop = runClaimLoop({
    claim: () => {
      claims++;
      return Promise.reject(new Error("server down"));
    },
    handle: () => Promise.resolve(),
    concurrency: 1,
    clock,
    logger: log.logger,
    signal: stop.signal,
  });
  await settle();
  assert.equal(claims, 1, "no retry before the backoff delay passes");
  await clock.advance(100);
  assert.equal(claims, 2);
  await clock.advance(10_000);
  assert.equal(claims, 3);
  stop.abort();
  await loop;
  assert.ok(log.records().some((r) => r.msg === "claiming work failed"));
});

Deno.test("stopping the loop waits for the items it runs", async () => {
  const stop = new AbortController();
  let finished = false;
  let claimed = false;
  const loop = runClaimLoop({
    claim: async (_max, signal) => {
      if (claimed) {
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        return [];
      }
      claimed = true;
      return ["job"];
    },
    handle: async () => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      finished = true;
    },
    concurrency: 2,
    clock: new FakeClock(),
    logger: memoryLog().logger,
    signal: stop.signal,
  });
  await new Promise((resolve) => setTimeout(resolve, 10));
  stop.abort();
  await loop;
  assert.equal(finished, true);
});
