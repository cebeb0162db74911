/**
 * JobEventsService: workers publish a job's events; clients replay and
 * follow them.
 *
 * @module
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { JobEventsService, StreamJobEventsResponse } from "../../gen/job/v1/job_pb.ts";
import type { JobStore } from "../store/job_store.ts";
import { validatePublishMessage, validateStreamRequest } from "./request_validation.ts";

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
      for await (const event of store.streamEvents(jobId, { ...bounds, signal: ctx.signal })) {
        yield { $typeName: "job.v1.StreamJobEventsResponse", event };
      }
      // The store ends the stream early only when the call was aborted (by
      // the client, its deadline or server shutdown). Say so, rather than end
      // as if the job had finished.
      if (ctx.signal.aborted) throw ctx.signal.reason;
    },

    async publishJobEvents(requests) {
      for await (const req of requests) {
        validatePublishMessage(req.taskToken, req.events.length);
        await store.publishEvents(req.taskToken, req.events);
      }
      return {};
    },
  };
}
