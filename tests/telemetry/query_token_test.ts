/**
 * Issue 18, hole 6: a token put in the query string (by a misconfigured
 * client or a copied link) must not reach the server's logs or spans. The
 * real `airunner server` runs with `--log-level debug` and OTEL_DENO=true
 * against an OTLP receiver; the call's span is named after the procedure
 * and carries no part of the query.
 */
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { ListJobsRequestSchema } from "../../gen/job/v1/job_pb.ts";
import { freePort, startAirunner, waitForHealth } from "../support/airunner_process.ts";
import { startOtlpReceiver } from "../support/otlp_receiver.ts";

/** Shaped like a JWT, so a leak of any part of it is easy to find. */
const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJsZWFreSJ9.c2lnbmF0dXJlLW9mLWEtbGVha2VkLXRva2Vu";

Deno.test("a token in the query string reaches no log line, span name or span attribute", async () => {
  await using receiver = startOtlpReceiver();
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = startAirunner(
    [
      "server",
      "--listen",
      `127.0.0.1:${port}`,
      "--store",
      "memory",
      "--no-auth",
      "--log-level",
      "debug",
    ],
    {
      env: {
        OTEL_DENO: "true",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_SERVICE_NAME: "airunner-server",
      },
    },
  );
  let stderr = "";
  try {
    await waitForHealth(url);
    const listed = await fetch(`${url}/job.v1.JobService/ListJobs?token=${TOKEN}`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: toBinary(ListJobsRequestSchema, create(ListJobsRequestSchema, { queue: "q" })),
    });
    assert.equal(listed.status, 200);
    await listed.body?.cancel();
    const health = await fetch(`${url}/health?access_token=${TOKEN}`);
    await health.body?.cancel();
  } finally {
    // Spans are exported at exit at the latest.
    stderr = (await server.stop()).stderr;
  }
  const deadline = Date.now() + 10_000;
  const span = () =>
    receiver.spans.find((s) =>
      s.service === "airunner-server" && s.name === "job.v1.JobService/ListJobs"
    );
  while (span() === undefined && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const call = span();
  assert.ok(call !== undefined, `no ListJobs span in ${receiver.spans.map((s) => s.name)}`);
  assert.equal(call.attributes["url.path"], "/job.v1.JobService/ListJobs");
  const serverSpans = receiver.spans.filter((s) => s.service === "airunner-server");
  assert.ok(serverSpans.length >= 2, "the health check was traced too");
  for (const s of serverSpans) {
    const text = JSON.stringify(s);
    assert.ok(!text.includes(TOKEN.slice(0, 12)), `span ${s.name} holds the token: ${text}`);
  }
  assert.match(stderr, /"procedure":"\/job\.v1\.JobService\/ListJobs"/, "the call was logged");
  assert.ok(!stderr.includes(TOKEN.slice(0, 12)), "the token is in no log line");
});
