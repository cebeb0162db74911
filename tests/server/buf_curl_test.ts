/**
 * A client other than airunner's own: `buf curl` with the repository's proto
 * calls the server over the Connect protocol (HTTP/1.1) and gRPC-Web (h2c).
 */
import assert from "node:assert/strict";
import { startServer } from "../../src/server/http_server.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { runBuf } from "../../scripts/buf.ts";
import { memoryLog } from "../support/memory_log.ts";

/** Calls `procedure` with `buf curl` and the repository's proto, a client airunner did not write. */
function bufCurl(
  baseUrl: string,
  procedure: string,
  protocol: "connect" | "grpcweb",
  data: string,
  options: { http2?: boolean } = {},
) {
  return runBuf([
    "curl",
    "--schema",
    "proto",
    "--protocol",
    protocol,
    ...(options.http2 ? ["--http2-prior-knowledge"] : []),
    "--data",
    data,
    `${baseUrl}/${procedure}`,
  ]);
}

Deno.test("buf curl enqueues (unary, Connect) and dequeues (server streaming, gRPC-Web over h2c)", async () => {
  await using store = new MemoryJobStore();
  await using server = await startServer({
    store,
    logger: memoryLog().logger,
    hostname: "127.0.0.1",
    port: 0,
  });
  const enqueued = await bufCurl(
    server.url,
    "job.v1.JobService/EnqueueJob",
    "connect",
    JSON.stringify({ queue: "default", jobParams: { command: "echo", args: ["from buf"] } }),
  );
  assert.equal(enqueued.code, 0, enqueued.stderr);
  const { jobId, state } = JSON.parse(enqueued.stdout);
  assert.equal(state, "JOB_STATE_SCHEDULED");

  const dequeued = await bufCurl(
    server.url,
    "job.v1.JobService/DequeueJob",
    "grpcweb",
    JSON.stringify({ queue: "default", maxJobs: 1 }),
    { http2: true },
  );
  assert.equal(dequeued.code, 0, dequeued.stderr);
  const message = JSON.parse(dequeued.stdout);
  assert.equal(message.job.jobId, jobId);
  assert.equal(message.job.state, "JOB_STATE_RUNNING");
  assert.deepEqual(message.job.jobParams.args, ["from buf"]);
  assert.match(message.taskToken, /^v1\./);

  const invalid = await bufCurl(
    server.url,
    "job.v1.JobService/EnqueueJob",
    "connect",
    JSON.stringify({ queue: "bad queue!", jobParams: { command: "x" } }),
  );
  assert.notEqual(invalid.code, 0);
  assert.match(invalid.stdout + invalid.stderr, /invalid_argument/);
  assert.match(invalid.stdout + invalid.stderr, /queue: may contain only/);
});
