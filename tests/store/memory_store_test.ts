import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { defineStoreConformance } from "./conformance.ts";

defineStoreConformance("memory", (options) => {
  const clock = new FakeClock();
  const store = new MemoryJobStore({ clock, ...options });
  return Promise.resolve({
    store,
    advance: (ms) => clock.advance(ms),
    now: () => clock.now(),
    close: () => store.close(),
  });
});
