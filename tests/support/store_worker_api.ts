/**
 * A WorkerApi that calls a JobStore directly, so worker logic runs with real
 * processes but without a network. Store errors come out as the Connect
 * errors the server would send, as over RPC.
 *
 * @module
 */
import { toConnectError } from "../../src/server/error_mapping.ts";
import type { JobStore } from "../../src/store/job_store.ts";
import { completeAfterEvents, type WorkerApi } from "../../src/worker/worker_api.ts";

export function storeWorkerApi(store: JobStore): WorkerApi {
  const rpc = <T>(call: () => Promise<T>): Promise<T> =>
    call().catch((error) => {
      throw toConnectError(error);
    });
  const publishEvents: WorkerApi["publishEvents"] = (token, events) =>
    rpc(async () => void await store.publishEvents(token, events));
  return {
    claim: (queue, { maxJobs, visibilityTimeoutSeconds, signal }) =>
      rpc(() =>
        store.dequeue(queue, {
          maxJobs,
          visibilityTimeoutMs: visibilityTimeoutSeconds * 1000,
          signal,
        })
      ),
    extendLease: (token, queue, seconds) =>
      rpc(() => store.updateLease(token, queue, seconds * 1000)),
    publishEvents,
    complete: (token, completion) =>
      completeAfterEvents(
        publishEvents,
        (result) => rpc(async () => void await store.complete(token, result)),
        token,
        completion,
      ),
  };
}
