/**
 * A client other than airunner's own: `buf curl` with the repository's proto
 * calls the server over the Connect protocol (HTTP/1.1) and gRPC-Web (h2c).
 */
import assert from "node:assert/strict";
import { startServer } from "../../src/server/http_server.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { runBuf } from "../../scripts/buf.ts";
import { memoryLog } from "../support/memory_log.ts";

Deno.test("buf curl enqueues (unary, Connect) and dequeues (server streaming, gRPC-Web over h2c)", async () => {
  await using store = new MemoryJobStore();
  await using server = await startServer({
    store,
    logger: memoryLog().logger,
    hostname: "127.0.0.1",
    port: 0,
  });
  const enqueued = await runBuf([
    "curl",
    "--schema",
    "proto",
    "--protocol",
    "connect",
    "--data",
    JSON.stringify({ queue: "default", jobParams: { command: "echo", args: ["from buf"] } }),
    `${server.url}/job.v1.JobService/EnqueueJob`,
  ]);
  assert.equal(enqueued.code, 0, enqueued.stderr);
  const { jobId, state } = JSON.parse(enqueued.stdout);
  assert.equal(state, "JOB_STATE_SCHEDULED");

  const dequeued = await runBuf([
    "curl",
    "--schema",
    "proto",
    "--protocol",
    "grpcweb",
    "--http2-prior-knowledge",
    "--data",
    JSON.stringify({ queue: "default", maxJobs: 1 }),
    `${server.url}/job.v1.JobService/DequeueJob`,
  ]);
  assert.equal(dequeued.code, 0, dequeued.stderr);
  const message = JSON.parse(dequeued.stdout);
  assert.equal(message.job.jobId, jobId);
  assert.equal(message.job.state, "JOB_STATE_RUNNING");
  assert.deepEqual(message.job.jobParams.args, ["from buf"]);
  assert.match(message.taskToken, /^v1\./);

  const invalid = await runBuf([
    "curl",
    "--schema",
    "proto",
    "--protocol",
    "connect",
    "--data",
    JSON.stringify({ queue: "bad queue!", jobParams: { command: "x" } }),
    `${server.url}/job.v1.JobService/EnqueueJob`,
  ]);
  assert.notEqual(invalid.code, 0);
  assert.match(invalid.stdout + invalid.stderr, /invalid_argument/);
  assert.match(invalid.stdout + invalid.stderr, /queue: may contain only/);
});
