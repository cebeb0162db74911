/**
 * OpenTelemetry end to end: a server, a worker and `submit --follow` run
 * with OTEL_DENO=true against an OTLP receiver on 127.0.0.1; one trace
 * links the submit, the RPC spans, the worker's job span and the
 * TRACEPARENT the job's process saw, and every documented metric arrives.
 */
import assert from "node:assert/strict";
import { METRICS } from "../../src/telemetry/metrics.ts";
import {
  freePort,
  runAirunner,
  startAirunner,
  waitForHealth,
  WORKER_PROTOCOLS,
} from "../support/airunner_process.ts";
import { SESSION_SPAN_PREFIX } from "../../src/server/worker_session.ts";
import { startOtlpReceiver } from "../support/otlp_receiver.ts";

function otelEnv(endpoint: string, service: string): Record<string, string> {
  return {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
    OTEL_METRIC_EXPORT_INTERVAL: "500",
    OTEL_SERVICE_NAME: service,
  };
}

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`one trace runs from submit through the server and the worker into the job's process [${protocol}]`, async () => {
    await using receiver = startOtlpReceiver();
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    const server = startAirunner(
      ["server", "--listen", `127.0.0.1:${port}`, "--store", "memory", "--no-auth"],
      { env: otelEnv(receiver.endpoint, "airunner-server") },
    );
    await waitForHealth(url);
    const worker = startAirunner(["worker", "--server", url, "--protocol", protocol], {
      env: otelEnv(receiver.endpoint, "airunner-worker"),
    });
    let traceparent = "";
    try {
      const submit = await runAirunner(
        ["submit", "--server", url, "--follow", "--", "sh", "-c", 'echo "$TRACEPARENT"'],
        { env: otelEnv(receiver.endpoint, "airunner-submit") },
      );
      assert.equal(submit.code, 0, submit.stderr);
      traceparent = submit.stdout.trim();
      // The queue-depth gauge is read at the periodic exports (every 500 ms here), not at exit.
      const deadline = Date.now() + 10_000;
      while (!receiver.metrics.has("airunner.queue.depth") && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await worker.stop();
      await server.stop();
    }
    const [, traceId, parentSpanId] =
      /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(traceparent) ??
        [];
    assert.ok(traceId !== undefined, `the job saw a W3C TRACEPARENT, got "${traceparent}"`);

    // Exports arrive on exit; give the last ones a moment.
    const deadline = Date.now() + 10_000;
    const names = () =>
      new Set(receiver.spans.filter((s) => s.traceId === traceId).map((s) => s.name));
    while (
      Date.now() < deadline && !(names().has("airunner.job") && names().has("airunner submit"))
    ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const trace = receiver.spans.filter((s) => s.traceId === traceId);
    const byName = (name: string) => trace.filter((s) => s.name === name);
    const submitSpan = byName("airunner submit")[0];
    const jobSpan = byName("airunner.job")[0];
    assert.ok(submitSpan !== undefined, `no submit span in ${[...names()]}`);
    assert.ok(jobSpan !== undefined, `no job span in ${[...names()]}`);
    assert.equal(submitSpan.service, "airunner-submit");
    assert.equal(jobSpan.service, "airunner-worker");
    assert.equal(jobSpan.parentSpanId, submitSpan.spanId, "the job continues the submit's trace");
    assert.equal(parentSpanId, jobSpan.spanId, "the job's process is a child of the job span");
    assert.equal(jobSpan.attributes["airunner.queue"], "default");

    const enqueue = byName("job.v1.JobService/EnqueueJob")[0];
    assert.ok(enqueue !== undefined, "the server's EnqueueJob span is in the trace");
    assert.equal(enqueue.service, "airunner-server");
    assert.equal(enqueue.attributes["rpc.method"], "EnqueueJob");
    assert.match(String(enqueue.attributes["airunner.job_id"]), /^[0-9a-f-]{36}$/);
    // The worker's own calls join the job's trace, whichever way they travel.
    const workerCalls = protocol === "unary"
      ? ["job.v1.JobService/CompleteJob", "job.v1.JobEventsService/PublishJobEvents"]
      : [`${SESSION_SPAN_PREFIX}complete`, `${SESSION_SPAN_PREFIX}publish_events`];
    for (const rpc of workerCalls) {
      const span = byName(rpc)[0];
      assert.ok(span !== undefined, `the worker's ${rpc} is in the trace`);
      assert.equal(span.service, "airunner-server");
    }
    assert.ok(byName("store.enqueue").length > 0, "store operations are child spans");

    for (const name of Object.keys(METRICS)) {
      assert.ok(receiver.metrics.has(name), `metric ${name} never arrived`);
    }
    assert.ok(receiver.metrics.get("airunner.jobs.enqueued.total")?.has("airunner-server"));
    assert.ok(receiver.metrics.get("airunner.jobs.time_to_start")?.has("airunner-worker"));
  });
}

Deno.test("with no collector listening, telemetry neither breaks nor stalls a command", async () => {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  // Port 1 is below the range freePort() draws from, so no test running
  // alongside can be listening there (a freed port could be taken by one, a
  // stalled proxy say, and the commands would wait on it at exit).
  const env = otelEnv("http://127.0.0.1:1", "airunner-test");
  await using _server = startAirunner(
    ["server", "--listen", `127.0.0.1:${port}`, "--store", "memory", "--no-auth"],
    { env },
  );
  await waitForHealth(url);
  await using _worker = startAirunner(["worker", "--server", url], { env });
  const started = performance.now();
  const submit = await runAirunner(["submit", "--server", url, "--follow", "--", "echo", "ok"], {
    env,
  });
  assert.equal(submit.stdout, "ok\n", submit.stderr);
  assert.equal(submit.code, 0);
  assert.ok(performance.now() - started < 20_000, "the exporter does not hold the command up");
});
