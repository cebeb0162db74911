/**
 * The pickup floor's server: carries one job from a unary call to a message
 * pushed on an open stream over Deno's HTTP, with as little in between as a
 * job runner could have. It answers the question "how low can pickup go on
 * this machine and runtime?", which airunner's own pickup is read against.
 *
 * Two modes:
 * - `bare`: no job at all. `POST /enqueue` reads its body and writes a fixed
 *   120-byte chunk to every open `POST /session` stream: two HTTP hops and
 *   nothing else.
 * - `minimal`: what any job runner must do. `POST /enqueue` decodes an
 *   EnqueueJobRequest, validates it and stores the job in airunner's memory
 *   store; each `/session` stream waits in the store's dequeue, leases the job
 *   and writes it as an envelope-framed WorkerSessionResponse. No Connect, no
 *   authentication, interceptors, logging, telemetry or session bookkeeping.
 *
 *   floor_server.ts --port P --mode bare|minimal
 *
 * @module
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { parseArgs } from "node:util";
import {
  DequeueJobResponseSchema,
  EnqueueJobRequestSchema,
  EnqueueJobResponseSchema,
  WorkerSessionResponseSchema,
} from "../../gen/job/v1/job_pb.ts";
import { defaultExecutionConfig } from "../../src/server/execution_config.ts";
import { validateEnqueueRequest } from "../../src/protocol/request_validation.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";

/** The queue the minimal mode's jobs go to. */
export const FLOOR_QUEUE = "floor";
/** How the floor server is built: see the module doc. */
export type FloorMode = "bare" | "minimal";

/** `value` as a {@link FloorMode}; throws naming the flag otherwise. */
export function parseFloorMode(value: string | undefined): FloorMode {
  if (value === "bare" || value === "minimal") return value;
  throw new Error(`--mode must be bare or minimal, not ${value}`);
}

const BARE_PUSH = encodeEnvelope(0, new Uint8Array(115));
const BARE_ANSWER = new Uint8Array(40);

function serveBare(): (req: Request) => Promise<Response> {
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  return async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/session") {
      let own: ReadableStreamDefaultController<Uint8Array> | undefined;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          own = controller;
          streams.add(controller);
        },
        cancel() {
          if (own !== undefined) streams.delete(own);
        },
      });
      return new Response(body, { headers: { "content-type": "application/connect+proto" } });
    }
    await req.bytes();
    for (const stream of streams) {
      try {
        stream.enqueue(BARE_PUSH.slice());
      } catch {
        streams.delete(stream); // errored without being cancelled
      }
    }
    return new Response(BARE_ANSWER.slice(), { headers: { "content-type": "application/proto" } });
  };
}

function serveMinimal(): (req: Request) => Promise<Response> {
  const store = new MemoryJobStore();
  const executionConfig = defaultExecutionConfig();
  return async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/session") {
      const ended = new AbortController();
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          while (!ended.signal.aborted) {
            const leased = await store.dequeue(FLOOR_QUEUE, {
              maxJobs: 100,
              visibilityTimeoutMs: 300_000,
              signal: ended.signal,
            });
            // With no maxWaitMs, nothing leased means the stream was cancelled.
            if (leased.length === 0 || ended.signal.aborted) break;
            const message = create(WorkerSessionResponseSchema, {
              jobs: leased.map(({ job, taskToken }) =>
                create(DequeueJobResponseSchema, { job, taskToken })
              ),
            });
            controller.enqueue(encodeEnvelope(0, toBinary(WorkerSessionResponseSchema, message)));
          }
        },
        cancel() {
          ended.abort();
        },
      });
      return new Response(body, { headers: { "content-type": "application/connect+proto" } });
    }
    const request = fromBinary(EnqueueJobRequestSchema, await req.bytes());
    const { job } = await store.enqueue({ ...validateEnqueueRequest(request), executionConfig });
    const answer = create(EnqueueJobResponseSchema, {
      jobId: job.jobId,
      createdAt: job.createdAt,
      state: job.state,
    });
    return new Response(toBinary(EnqueueJobResponseSchema, answer), {
      headers: { "content-type": "application/proto" },
    });
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string" }, mode: { type: "string", default: "minimal" } },
  });
  const handler = parseFloorMode(values.mode) === "bare" ? serveBare() : serveMinimal();
  Deno.serve({ hostname: "127.0.0.1", port: Number(values.port), onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET" && path === "/health") return new Response("ok");
    if (req.method === "POST" && (path === "/session" || path === "/enqueue")) return handler(req);
    return new Response("not found", { status: 404 });
  });
}
