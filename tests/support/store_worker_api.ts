/**
 * A WorkerApi that calls a JobStore directly, so worker logic runs with real
 * processes but without a network.
 *
 * @module
 */
import type { JobStore } from "../../src/store/job_store.ts";
import type { WorkerApi } from "../../src/worker/worker_api.ts";

export function storeWorkerApi(store: JobStore): WorkerApi {
  return {
    claim: (queue, { maxJobs, visibilityTimeoutSeconds, signal }) =>
      store.dequeue(queue, {
        maxJobs,
        visibilityTimeoutMs: visibilityTimeoutSeconds * 1000,
        signal,
      }),
    extendLease: (token, queue, seconds) => store.updateLease(token, queue, seconds * 1000),
    publishEvents: (token, events) => store.publishEvents(token, events),
    complete: async (token, result) => {
      await store.complete(token, result);
    },
  };
}
