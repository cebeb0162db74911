/**
 * Secret environment values over a real server: every reader (GetJob,
 * ListJobs, CancelJob; binary through the fast path and JSON through
 * Connect) sees the names with "***"; the worker that leases the job
 * (DequeueJob, the WorkerSession push) gets the values; the server's log
 * holds none of them.
 */
import assert from "node:assert/strict";
import { JobState } from "../../gen/job/v1/job_pb.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { startServer } from "../../src/server/http_server.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { memoryLog } from "../support/memory_log.ts";
import { sessionApiTo, unaryApiTo } from "../support/memory_server.ts";

const SECRET = "s3cr3t-value-4711";
const secretParams = (queue: string) => ({
  queue,
  jobParams: {
    command: "echo",
    environment: { CI: "true" },
    secretEnvironment: { TOKEN: SECRET, KEY: "line one\nline two" },
  },
});

/** A JSON call through Connect's own handler (the fast path serves only binary). */
async function jsonPost(url: string, method: string, body: unknown) {
  const response = await fetch(`${url}/job.v1.JobService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, text: await response.text() };
}

async function jsonCall(url: string, method: string, body: unknown): Promise<string> {
  const { status, text } = await jsonPost(url, method, body);
  assert.equal(status, 200, text);
  return text;
}

Deno.test("readers see secret names with *** only; the leasing worker gets the values; logs hold none", async () => {
  const store = new MemoryJobStore();
  const log = memoryLog();
  const server = await startServer({ store, logger: log.logger, hostname: "127.0.0.1", port: 0 });
  const session = sessionApiTo(server.url);
  try {
    const { jobs } = createAirunnerClients({ serverUrl: server.url });
    const { jobId } = await jobs.enqueueJob(secretParams("unary"));
    const redacted = { TOKEN: "***", KEY: "***" };

    const got = (await jobs.getJob({ jobId })).job;
    assert.deepEqual(got?.jobParams?.secretEnvironment, redacted);
    assert.deepEqual(got?.jobParams?.environment, { CI: "true" }, "plain environment unchanged");
    const listed = (await jobs.listJobs({})).jobs;
    assert.deepEqual(listed.map((j) => j.jobParams?.secretEnvironment), [redacted]);
    for (
      const text of [
        await jsonCall(server.url, "GetJob", { jobId }),
        await jsonCall(server.url, "ListJobs", {}),
      ]
    ) {
      assert.ok(!text.includes(SECRET), text);
      assert.ok(!text.includes("line one"), text);
      assert.match(text, /"secretEnvironment":\{"TOKEN":"\*\*\*","KEY":"\*\*\*"\}/);
    }

    // The store keeps the values (its object untouched by redaction).
    assert.equal((await store.getJob(jobId)).jobParams?.secretEnvironment.TOKEN, SECRET);

    // DequeueJob: the worker's unary protocol.
    const [leased] = await unaryApiTo(server.url).claim("unary", {
      maxJobs: 1,
      visibilityTimeoutSeconds: 60,
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(leased?.job.jobId, jobId);
    assert.deepEqual(leased?.job.jobParams?.secretEnvironment, {
      TOKEN: SECRET,
      KEY: "line one\nline two",
    });

    // The WorkerSession push.
    const pushed = await jobs.enqueueJob(secretParams("session"));
    const [viaSession] = await session.claim("session", {
      maxJobs: 1,
      visibilityTimeoutSeconds: 60,
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(viaSession?.job.jobId, pushed.jobId);
    assert.equal(viaSession?.job.jobParams?.secretEnvironment.TOKEN, SECRET);

    // CancelJob answers with the job: redacted too.
    const scheduled = await jobs.enqueueJob(secretParams("never"));
    const cancelled = (await jobs.cancelJob({ jobId: scheduled.jobId, reason: "test" })).job;
    assert.equal(cancelled?.state, JobState.CANCELLED);
    assert.deepEqual(cancelled?.jobParams?.secretEnvironment, redacted);

    // Refused: a name in both maps; the message names the field and the key, not the value.
    const refused = await jsonPost(server.url, "EnqueueJob", {
      queue: "q",
      jobParams: {
        command: "x",
        environment: { TOKEN: "plain" },
        secretEnvironment: { TOKEN: SECRET },
      },
    });
    assert.equal(refused.status, 400);
    const { code, message } = JSON.parse(refused.text) as { code: string; message: string };
    assert.equal(code, "invalid_argument");
    assert.equal(
      message,
      'job_params.secret_environment: key "TOKEN" is also in job_params.environment; give it in one of the two',
    );
  } finally {
    await session.close();
    await server.close();
    await store.close();
  }
  const lines = JSON.stringify(log.records());
  assert.ok(!lines.includes(SECRET), "the server's log holds no secret value");
});

Deno.test("the logger redacts secret environments wherever a job or its parameters are logged", () => {
  const log = memoryLog();
  const params = { command: "x", secretEnvironment: { TOKEN: SECRET } };
  log.logger.info({ secretEnvironment: params.secretEnvironment }, "top level");
  log.logger.info({ params }, "nested once");
  log.logger.info({ job: { jobParams: params } }, "nested twice");
  const text = JSON.stringify(log.records());
  assert.ok(!text.includes(SECRET), text);
  assert.equal(log.records().length, 3);
});
