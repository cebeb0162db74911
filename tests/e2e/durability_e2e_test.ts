/**
 * The durable default, tested the way it fails in real life: a server
 * process killed with SIGKILL, or stopped and started again, on the same
 * data dir.
 */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { EventType, JobState } from "../../gen/job/v1/job_pb.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import {
  freePort,
  runAirunner,
  startServerProcess,
  waitForHealth,
} from "../support/airunner_process.ts";
import { once } from "../support/streams.ts";

function startServer(dataDir: string, port: number) {
  return startServerProcess(dataDir, port);
}

Deno.test("every acknowledged job and event survives kill -9 of the server", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "airunner-kill9-" });
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  try {
    const first = startServer(dataDir, port);
    await waitForHealth(url);
    const clients = createAirunnerClients({ serverUrl: url, timeoutMs: 5_000 });

    // One job with events and a result, acknowledged before the kill.
    const { jobId: finished } = await clients.jobs.enqueueJob({
      queue: "default",
      jobParams: { command: "true" },
    });
    const leased = [];
    for await (const res of clients.jobs.dequeueJob({ queue: "default" })) leased.push(res);
    const start = makeEvent(1n, Date.now(), {
      case: "processStart",
      value: { $typeName: "job.v1.ProcessStartEvent", pid: 7 },
    });
    await clients.events.publishJobEvents(
      once({ taskToken: leased[0]!.taskToken, events: [start] }),
    );
    await clients.jobs.completeJob({
      taskToken: leased[0]!.taskToken,
      jobResult: { jobId: finished, success: false, exitCode: 3 },
    });

    // Enqueues keep coming while the server is killed.
    const acknowledged: string[] = [];
    let killed = false;
    const submitting = Promise.all(Array.from({ length: 8 }, async () => {
      while (!killed) {
        try {
          const { jobId } = await clients.jobs.enqueueJob({
            queue: "load",
            jobParams: { command: "true" },
          });
          acknowledged.push(jobId);
        } catch {
          return; // the server is gone: this enqueue was never acknowledged
        }
      }
    }));
    while (acknowledged.length < 200) await new Promise((resolve) => setTimeout(resolve, 5));
    first.child.kill("SIGKILL");
    killed = true;
    await submitting;
    await first.stop();

    await using second = startServer(dataDir, port);
    await waitForHealth(url);
    const stored = new Set<string>();
    for (let page = 1;; page++) {
      const res = await clients.jobs.listJobs({ queue: "load", page, pageSize: 1000 });
      for (const job of res.jobs) stored.add(job.jobId);
      if (page >= res.lastPage) break;
    }
    const lost = acknowledged.filter((id) => !stored.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${acknowledged.length} acknowledged jobs lost`);

    const { job } = await clients.jobs.getJob({ jobId: finished });
    assert.equal(job?.state, JobState.FAILED);
    assert.equal(job?.result?.exitCode, 3);
    const events = [];
    for await (const { event } of clients.events.streamJobEvents({ jobId: finished })) {
      events.push(event?.eventType);
    }
    assert.deepEqual(events, [EventType.PROCESS_START]);
    await second.stop();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("across a restart, a held token keeps working and a lapsed lease is redelivered", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "airunner-restart-" });
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  try {
    const first = startServer(dataDir, port);
    await waitForHealth(url);
    const clients = createAirunnerClients({ serverUrl: url, timeoutMs: 5_000 });
    const { jobId: held } = await clients.jobs.enqueueJob({
      queue: "q",
      jobParams: { command: "a" },
    });
    const { jobId: lapsing } = await clients.jobs.enqueueJob({
      queue: "q",
      jobParams: { command: "b" },
    });
    const leases = [];
    for await (
      const res of clients.jobs.dequeueJob({ queue: "q", visibilityTimeoutSeconds: 120 })
    ) leases.push(res);
    for await (const res of clients.jobs.dequeueJob({ queue: "q", visibilityTimeoutSeconds: 1 })) {
      leases.push(res);
    }
    assert.deepEqual(leases.map((l) => l.job?.jobId), [held, lapsing]);
    const stopped = await first.stop("SIGTERM");
    assert.equal(stopped.code, 0, stopped.stderr);
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // the 1 s lease runs out while down

    await using second = startServer(dataDir, port);
    await waitForHealth(url);
    await clients.jobs.updateJob({
      queue: "q",
      taskToken: leases[0]!.taskToken,
      visibilityTimeoutSeconds: 120,
    });
    await clients.jobs.completeJob({
      taskToken: leases[0]!.taskToken,
      jobResult: { jobId: held, success: true },
    });
    assert.equal((await clients.jobs.getJob({ jobId: held })).job?.state, JobState.COMPLETED);

    const again = [];
    for await (const res of clients.jobs.dequeueJob({ queue: "q" }, { timeoutMs: 5_000 })) {
      again.push(res);
    }
    assert.equal(again[0]?.job?.jobId, lapsing);
    assert.equal(again[0]?.job?.attempt, 2);
    await assert.rejects(
      clients.jobs.completeJob({
        taskToken: leases[1]!.taskToken,
        jobResult: { jobId: lapsing, success: true },
      }),
      (error: unknown) => ConnectError.from(error).code === Code.FailedPrecondition,
    );
    await second.stop();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a second server on the same data dir refuses to start", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "airunner-twice-" });
  try {
    const port = freePort();
    await using first = startServer(dataDir, port);
    await waitForHealth(`http://127.0.0.1:${port}`);
    const second = startServer(dataDir, freePort());
    const { code, stderr } = await second.child.status.then(async (status) => ({
      code: status.code,
      stderr: (await second.stop()).stderr,
    }));
    assert.notEqual(code, 0);
    assert.match(stderr, /airunner: error: data dir .* is in use by another airunner server/);
    await first.stop();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("airunner backup copies a running server's store consistently", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "airunner-backup-" });
  const restoreDir = await Deno.makeTempDir({ prefix: "airunner-restore-" });
  try {
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    await using server = startServer(dataDir, port);
    await waitForHealth(url);
    const clients = createAirunnerClients({ serverUrl: url });
    const ids = [];
    for (let i = 0; i < 20; i++) {
      ids.push(
        (await clients.jobs.enqueueJob({ queue: "b", jobParams: { command: "true" } })).jobId,
      );
    }
    const out = `${restoreDir}/airunner.db`;
    const backup = await runAirunner(["backup", "--data-dir", dataDir, "--out", out]);
    assert.equal(backup.code, 0, backup.stderr);
    const again = await runAirunner(["backup", "--data-dir", dataDir, "--out", out]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists already/);
    await server.stop();

    const restoredPort = freePort();
    await using restored = startServer(restoreDir, restoredPort);
    await waitForHealth(`http://127.0.0.1:${restoredPort}`);
    const list = await createAirunnerClients({ serverUrl: `http://127.0.0.1:${restoredPort}` }).jobs
      .listJobs({ queue: "b", pageSize: 100 });
    assert.deepEqual(list.jobs.map((j) => j.jobId).sort(), ids.sort());
    await restored.stop();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(restoreDir, { recursive: true });
  }
});
