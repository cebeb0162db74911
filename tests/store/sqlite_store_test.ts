import { SqliteJobStore } from "../../src/store/sqlite/sqlite_store.ts";
import { TaskTokenCodec } from "../../src/store/task_token.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { defineStoreConformance } from "./conformance.ts";

defineStoreConformance("sqlite", async (options) => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-sqlite-" });
  const clock = new FakeClock();
  const store = SqliteJobStore.open({
    path: `${dir}/airunner.db`,
    clock,
    tokenCodec: TaskTokenCodec.withRandomSecret(),
    ...options,
  });
  return {
    store,
    advance: (ms) => clock.advance(ms),
    now: () => clock.now(),
    close: async () => {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
});
