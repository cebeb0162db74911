/**
 * Delays past what a timer can hold (2^31 - 1 ms, about 24.8 days): a job
 * delayed 30 days leaves the store's timer asleep, not firing every
 * millisecond, on the real clock, on the memory and SQLite stores.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ExecutionConfigSchema, JobParamsSchema, JobState } from "../../gen/job/v1/job_pb.ts";
import { type Clock, MAX_TIMER_MS, systemClock } from "../../src/clock.ts";
import type { JobStore } from "../../src/store/job_store.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { SqliteJobStore } from "../../src/store/sqlite/sqlite_store.ts";
import { TaskTokenCodec } from "../../src/store/task_token.ts";

Deno.test("a sleep past the timer limit waits, rather than firing at once", async () => {
  const abort = new AbortController();
  let woke = false;
  const sleeping = systemClock.sleep(MAX_TIMER_MS + 60_000, abort.signal).then(() => woke = true);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(woke, false);
  abort.abort();
  await sleeping;
});

/** The real clock, counting its sleeps. */
function countingClock(): Clock & { sleeps: number } {
  const clock = {
    sleeps: 0,
    now: () => systemClock.now(),
    sleep(ms: number, signal?: AbortSignal) {
      clock.sleeps++;
      return systemClock.sleep(ms, signal);
    },
  };
  return clock;
}

for (
  const [name, open] of [
    ["memory", (clock: Clock) => new MemoryJobStore({ clock })],
    ["sqlite", (clock: Clock, dir: string) =>
      SqliteJobStore.open({
        path: `${dir}/airunner.db`,
        clock,
        tokenCodec: TaskTokenCodec.withRandomSecret(),
      })],
  ] as const
) {
  Deno.test(`${name} store: a job delayed 30 days leaves the timer asleep`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "airunner-long-delay-" });
    const clock = countingClock();
    const store: JobStore = open(clock, dir);
    try {
      const { job } = await store.enqueue({
        requestId: "",
        queue: "default",
        params: create(JobParamsSchema, { command: "later", delayMs: 30n * 86_400_000n }),
        executionConfig: create(ExecutionConfigSchema, {}),
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.ok(clock.sleeps <= 3, `${clock.sleeps} sleeps in 300 ms`);
      assert.equal((await store.getJob(job.jobId)).state, JobState.SCHEDULED);
    } finally {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
