import assert from "node:assert/strict";
import { StoreFullError } from "../../src/store/errors.ts";
import { LeaseExpiryTimer } from "../../src/store/lease_expiry_timer.ts";
import { FakeClock } from "../support/fake_clock.ts";

/** A timer over a set of lease expiries that `reclaim` removes once they passed. */
function timerOver(clock: FakeClock, expiries: number[]) {
  const log = { queries: 0, reclaims: [] as number[], errors: [] as unknown[] };
  let failWith: unknown;
  const timer = new LeaseExpiryTimer({
    clock,
    earliestExpiry: () => {
      log.queries++;
      return expiries.length === 0 ? null : Math.min(...expiries);
    },
    reclaim: (now) => {
      if (failWith !== undefined) {
        const error = failWith;
        failWith = undefined;
        throw error;
      }
      log.reclaims.push(now);
      expiries.splice(0, expiries.length, ...expiries.filter((at) => at > now));
    },
    onError: (error) => log.errors.push(error),
  });
  return { timer, log, failNextWith: (error: unknown) => (failWith = error) };
}

Deno.test("the timer fires at the earliest expiry, reclaims, and arms at the next one", async () => {
  const clock = new FakeClock(0);
  const expiries = [300, 100];
  const { timer, log } = timerOver(clock, expiries);
  timer.arm();
  assert.ok(!timer.mayHaveExpired(99));
  assert.ok(timer.mayHaveExpired(100));
  await clock.advance(99);
  assert.deepEqual(log.reclaims, []);
  await clock.advance(1);
  assert.deepEqual(log.reclaims, [100]);
  assert.deepEqual(expiries, [300]);
  await clock.advance(200);
  assert.deepEqual(log.reclaims, [100, 300]);
  assert.equal(clock.pendingSleeps, 0, "no lease left: nothing armed");
  assert.ok(timer.mayHaveExpired(0), "unarmed, the timer cannot rule an expiry out");
  timer.close();
});

Deno.test("a lease ending no earlier than the armed timer spares the query; an earlier one re-arms", async () => {
  const clock = new FakeClock(0);
  const expiries = [500];
  const { timer, log } = timerOver(clock, expiries);
  timer.arm();
  assert.equal(log.queries, 1);
  expiries.push(800);
  timer.arm(800);
  assert.equal(log.queries, 1);
  expiries.push(200);
  timer.arm(200);
  assert.equal(log.queries, 2);
  assert.equal(clock.pendingSleeps, 1, "the later timer was stopped");
  await clock.advance(200);
  assert.deepEqual(log.reclaims, [200]);
  timer.close();
  assert.equal(clock.pendingSleeps, 0);
});

Deno.test("a full disk is retried a second later; other errors are told and retried too", async () => {
  const clock = new FakeClock(0);
  const { timer, log, failNextWith } = timerOver(clock, [100]);
  timer.arm();
  failNextWith(new StoreFullError("/data"));
  await clock.advance(100);
  assert.deepEqual(log.reclaims, []);
  assert.deepEqual(log.errors, []);
  await clock.advance(999);
  assert.deepEqual(log.reclaims, []);
  failNextWith(new Error("broken"));
  await clock.advance(1);
  assert.equal(log.errors.length, 1);
  await clock.advance(1_000);
  assert.deepEqual(log.reclaims, [2_100]);
  timer.close();
});

Deno.test("after close the timer neither fires nor arms", async () => {
  const clock = new FakeClock(0);
  const { timer, log } = timerOver(clock, [100]);
  timer.arm();
  timer.close();
  timer.arm();
  assert.equal(clock.pendingSleeps, 0);
  await clock.advance(1_000);
  assert.deepEqual(log.reclaims, []);
});
