/**
 * A worker session whose connection is cut again and again while jobs run:
 * a real server (sqlite store) and a real worker running real processes, with
 * a TCP proxy between them that closes every connection mid-flight. No job is
 * lost, none runs (or completes) twice, and no event is stored twice.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { EventType, JobResultSchema, JobState } from "../../gen/job/v1/job_pb.ts";
import { systemClock } from "../../src/clock.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { startServer } from "../../src/server/http_server.ts";
import { SqliteJobStore } from "../../src/store/sqlite/sqlite_store.ts";
import { TaskTokenCodec } from "../../src/store/task_token.ts";
import { startWorker } from "../../src/worker/worker.ts";
import { memoryLog } from "../support/memory_log.ts";
import { storedEvents } from "../support/stored_events.ts";
import { startTcpProxy } from "../support/tcp_proxy.ts";
import { sessionApiTo, withMemoryServer } from "../support/memory_server.ts";

const JOBS = 80;
const LINES = 5;

Deno.test("cutting the session's connection mid-batch loses no job, runs none twice, stores no event twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-session-cut-" });
  const store = SqliteJobStore.open({
    path: join(dir, "airunner.db"),
    tokenCodec: TaskTokenCodec.withRandomSecret(),
  });
  const server = await startServer({
    store,
    logger: memoryLog().logger,
    hostname: "127.0.0.1",
    port: 0,
  });
  const proxy = startTcpProxy(Number(new URL(server.url).port));
  const ranFile = join(dir, "ran.txt");
  const workerLog = memoryLog();
  const api = sessionApiTo(proxy.url, { logger: workerLog.logger });
  const worker = startWorker({
    api,
    queues: ["default"],
    concurrency: 8,
    clock: systemClock,
    logger: workerLog.logger,
    baseEnv: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    // Short, so a job pushed into a cut connection comes back within the test.
    visibilityTimeoutSeconds: 5,
    killGraceMs: 1_000,
    shutdownGraceMs: 5_000,
    workspaceRoot: join(dir, "workspaces"),
    keepWorkspaces: false,
  });
  try {
    const clients = createAirunnerClients({ serverUrl: server.url });
    const { results } = await clients.jobs.enqueueJobs({
      jobs: Array.from({ length: JOBS }, () => ({
        queue: "default",
        jobParams: {
          command: "sh",
          args: [
            "-c",
            `echo "$AIRUNNER_JOB_ID" >> "$RAN"; i=1; while [ $i -le ${LINES} ]; do echo "line $i"; i=$((i+1)); done`,
          ],
          environment: { RAN: ranFile },
        },
      })),
    });
    const ids = results.map((r) => r.outcome.case === "job" ? r.outcome.value.jobId : "");
    assert.equal(new Set(ids).size, JOBS);

    // Cut every connection every 150 ms while jobs are still finishing.
    let cutsMidFlight = 0;
    const deadline = Date.now() + 90_000;
    for (;;) {
      const completed = await store.listJobs({ page: 1, pageSize: 1, state: JobState.COMPLETED });
      const done = completed.jobs.length === 0 ? 0 : completed.lastPage;
      if (done >= JOBS) break;
      assert.ok(Date.now() < deadline, `only ${done} of ${JOBS} jobs completed in time`);
      if (cutsMidFlight < 8 && proxy.cutAll() > 0) cutsMidFlight++;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    assert.ok(cutsMidFlight >= 3, `the connection was cut ${cutsMidFlight} times mid-flight`);
    assert.ok(proxy.accepted > cutsMidFlight, "the worker reconnected after each cut");
    assert.equal(api.protocol, "session", "no fallback hid the cuts");

    // No job lost: every one completed, successfully.
    for (const jobId of ids) {
      const job = await store.getJob(jobId);
      assert.equal(job.state, JobState.COMPLETED, `job ${jobId}`);
      assert.equal(job.result?.exitCode, 0);
    }
    // None ran twice (so none completed twice).
    const ran = (await Deno.readTextFile(ranFile)).trim().split("\n");
    assert.equal(ran.length, JOBS, "each job's command ran exactly once");
    assert.deepEqual(new Set(ran), new Set(ids));
    // No event stored twice: strictly increasing sequences, one start, one
    // end, and every line exactly once, in order.
    for (const jobId of ids) {
      const events = await storedEvents(store, jobId, 5_000);
      for (let i = 1; i < events.length; i++) {
        assert.ok(events[i]!.sequence > events[i - 1]!.sequence, `job ${jobId}: sequences`);
      }
      const count = (type: EventType) => events.filter((e) => e.eventType === type).length;
      assert.equal(count(EventType.PROCESS_START), 1, `job ${jobId}: one start`);
      assert.equal(count(EventType.PROCESS_END), 1, `job ${jobId}: one end`);
      const output = events.flatMap((e) =>
        e.eventData.case === "outputBatch"
          ? e.eventData.value.outputs.map((o) => new TextDecoder().decode(o.output))
          : []
      ).join("");
      assert.equal(
        output,
        Array.from({ length: LINES }, (_, i) => `line ${i + 1}\n`).join(""),
        `job ${jobId}: output`,
      );
    }
    console.log(
      `session cut: ${cutsMidFlight} cuts mid-flight, ${proxy.accepted} connections, ${JOBS} jobs`,
    );
  } finally {
    worker.stopNow();
    await worker.finished;
    await proxy.close();
    await server.close();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a session whose connection goes silent is given up on both sides; later jobs still arrive and none stays leased", async () => {
  // Heartbeats every 100 ms: each side gives up after 300 ms of silence.
  const heartbeatMs = 100;
  const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  await withMemoryServer(async (url, store) => {
    await using proxy = startTcpProxy(Number(new URL(url).port));
    const workerLog = memoryLog();
    const api = sessionApiTo(proxy.url, { logger: workerLog.logger, heartbeatMs });
    const clients = createAirunnerClients({ serverUrl: url });
    const claim = () =>
      api.claim("silent", {
        maxJobs: 1,
        visibilityTimeoutSeconds: 300,
        signal: AbortSignal.timeout(10_000),
      });
    const enqueue = async () =>
      (await clients.jobs.enqueueJob({ queue: "silent", jobParams: { command: "true" } })).jobId;
    try {
      const first = claim();
      const a = await enqueue();
      const [leasedA] = await first;
      assert.equal(leasedA?.job?.jobId, a);
      await api.complete(leasedA.taskToken, {
        result: create(JobResultSchema, { jobId: a, success: true }),
        lastEvents: [],
      });

      // Idle for eight intervals: the heartbeats keep the one connection up.
      await delay(8 * heartbeatMs);
      assert.equal(proxy.accepted, 1, "an idle session was not taken for dead");

      // The connection goes silent while the worker waits for its next job.
      assert.equal(proxy.stallAll(), 1);
      const second = claim();
      const reconnectBy = Date.now() + 5_000;
      while (proxy.accepted < 2) {
        assert.ok(Date.now() < reconnectBy, "the worker never gave up on the silent connection");
        await delay(20);
      }
      assert.ok(
        workerLog.records().some((r) =>
          String((r.err as { message?: string } | undefined)?.message).includes("heard nothing")
        ),
        "the worker said why it reconnected",
      );
      // By now the server has ended the silent session too, so a new job
      // goes to the live one instead of into the dead connection.
      await delay(5 * heartbeatMs);
      const b = await enqueue();
      const [leasedB] = await second;
      assert.equal(leasedB?.job?.jobId, b);
      await api.complete(leasedB.taskToken, {
        result: create(JobResultSchema, { jobId: b, success: true }),
        lastEvents: [],
      });
      const running = await store.listJobs({ page: 1, pageSize: 10, state: JobState.RUNNING });
      assert.deepEqual(running.jobs.map((j) => j.jobId), []);
    } finally {
      await api.close();
    }
  }, { sessionHeartbeatMs: heartbeatMs });
});
