/**
 * JobEventsService: workers publish a job's events; clients replay and
 * follow them.
 *
 * @module
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { JobEventsService, StreamJobEventsResponse } from "../../gen/job/v1/job_pb.ts";
import type { JobStore } from "../store/job_store.ts";
import { count } from "../telemetry/metrics.ts";
import { validatePublishMessage, validateStreamRequest } from "../protocol/request_validation.ts";

/** What JobEventsService needs. */
export interface JobEventsServiceDeps {
  readonly store: JobStore;
}

/** Builds the JobEventsService implementation. */
export function createJobEventsService(
  deps: JobEventsServiceDeps,
): ServiceImpl<typeof JobEventsService> {
  const { store } = deps;
  return {
    async *streamJobEvents(req, ctx: HandlerContext): AsyncGenerator<StreamJobEventsResponse> {
      const { jobId, ...bounds } = validateStreamRequest(req);
      count("airunner.streams.active", 1);
      try {
        // Ends cleanly only after the job has finished; a call cut short (by
        // the client, its deadline or server shutdown) ends with the reason.
        for await (const event of store.streamEvents(jobId, { ...bounds, signal: ctx.signal })) {
          yield { $typeName: "job.v1.StreamJobEventsResponse", event };
        }
      } finally {
        count("airunner.streams.active", -1);
      }
    },

    // Each message is validated and stored on its own, all or nothing, as it
    // arrives: a stream of events is applied message by message.
    async publishJobEvents(requests, ctx: HandlerContext) {
      for await (const req of untilAborted(requests, ctx.signal)) {
        validatePublishMessage(req.taskToken, req.events.length);
        await store.publishEvents(req.taskToken, req.events);
      }
      return {};
    },
  };
}

/** Iterates `source` until `signal` aborts, then throws its reason (even mid-wait). */
async function* untilAborted<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  const aborted = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  aborted.catch(() => {});
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), aborted]);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    // Not awaited: a pending next() would hold the return back.
    void iterator.return?.()?.catch(() => {});
  }
}
