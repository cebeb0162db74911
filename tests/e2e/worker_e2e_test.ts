/**
 * The worker as people run it: a separate process next to a server, through
 * server outages, shutdowns and cancels.
 */
import assert from "node:assert/strict";
import { EventType, JobState } from "../../gen/job/v1/job_pb.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import {
  airunnerInvocation,
  freePort,
  runAirunner,
  startAirunner,
  startServerProcess,
  waitForHealth,
  WORKER_PROTOCOLS,
  type WorkerProtocol,
} from "../support/airunner_process.ts";

/** A server on `port` with `dataDir`, started and healthy. */
async function server(dataDir: string, port: number) {
  const process = startServerProcess(dataDir, port);
  await waitForHealth(`http://127.0.0.1:${port}`);
  return process;
}

function worker(protocol: WorkerProtocol, url: string, ...extra: string[]) {
  return startAirunner([
    "worker",
    "--server",
    url,
    "--protocol",
    protocol,
    "--visibility-timeout",
    "30s",
    ...extra,
  ]);
}

async function waitForState(url: string, jobId: string, state: JobState, timeoutMs = 15_000) {
  const clients = createAirunnerClients({ serverUrl: url });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { job } = await clients.jobs.getJob({ jobId });
    if (job?.state === state) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} not ${JobState[state]} in time`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Waits until the job's command has started. RUNNING alone is not enough on
 * the session path: a job is RUNNING once it is pushed to a worker, a moment
 * before the worker starts its command.
 */
async function waitForProcessStart(url: string, jobId: string, timeoutMs = 15_000) {
  const clients = createAirunnerClients({ serverUrl: url });
  const events = clients.events.streamJobEvents(
    { jobId, eventFilter: [EventType.PROCESS_START] },
    { signal: AbortSignal.timeout(timeoutMs) },
  );
  for await (const { event } of events) {
    if (event?.eventType === EventType.PROCESS_START) return;
  }
  throw new Error(`job ${jobId} ended without starting its command`);
}

async function withDataDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "airunner-worker-e2e-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`a server crash mid-job loses no line and repeats none for the follower [${protocol}]`, async () => {
    await withDataDir(async (dataDir) => {
      const port = freePort();
      const url = `http://127.0.0.1:${port}`;
      const first = await server(dataDir, port);
      await using w = worker(protocol, url);
      const followerRun = airunnerInvocation([
        "submit",
        "--server",
        url,
        "--follow",
        "--",
        "sh",
        "-c",
        "for i in $(seq 1 40); do echo line $i; sleep 0.1; done",
      ]);
      const follower = new Deno.Command(followerRun.command, {
        args: followerRun.args,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stdout = new Response(follower.stdout).text();
      const stderr = new Response(follower.stderr).text();
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      first.child.kill("SIGKILL");
      await first.stop();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await using second = await server(dataDir, port);
      const status = await follower.status;
      const lines = (await stdout).trim().split("\n");
      assert.deepEqual(lines, Array.from({ length: 40 }, (_, i) => `line ${i + 1}`));
      assert.equal(status.code, 0, await stderr);
      assert.match(await stderr, /lost the server .*; reconnecting/);
      await w.stop();
      await second.stop();
    });
  });
}

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`SIGTERM to a worker hands its running job to another worker, which completes it [${protocol}]`, async () => {
    await withDataDir(async (dataDir) => {
      const port = freePort();
      const url = `http://127.0.0.1:${port}`;
      await using srv = await server(dataDir, port);
      const leaving = worker(protocol, url, "--shutdown-grace", "500ms");
      const submitted = await runAirunner([
        "submit",
        "--server",
        url,
        "--",
        "sh",
        "-c",
        'sleep 2; echo "done on attempt $AIRUNNER_ATTEMPT"',
      ]);
      const jobId = submitted.stdout.trim();
      await waitForProcessStart(url, jobId);
      const stopped = await leaving.stop("SIGTERM");
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.equal((await waitForState(url, jobId, JobState.SCHEDULED)).attempt, 1);
      await using taking = worker(protocol, url);
      const job = await waitForState(url, jobId, JobState.COMPLETED);
      assert.equal(job.attempt, 2);
      const log = await runAirunner(["monitor", jobId, "--server", url]);
      assert.match(log.stdout, /the worker shut down before the command finished/);
      assert.match(log.stdout, /^done on attempt 2$/m);
      await taking.stop();
      await srv.stop();
    });
  });
}

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`airunner cancel: a scheduled job never runs; a running one stops, and followers exit 130 [${protocol}]`, async () => {
    await withDataDir(async (dataDir) => {
      const port = freePort();
      const url = `http://127.0.0.1:${port}`;
      await using srv = await server(dataDir, port);
      await using w = worker(protocol, url);
      const submit = async (...command: string[]) =>
        (await runAirunner(["submit", "--server", url, "--", ...command])).stdout.trim();
      const running = await submit("sleep", "60");
      await waitForProcessStart(url, running);
      const waiting = await submit("echo", "never");

      const cancelWaiting = await runAirunner([
        "cancel",
        waiting,
        "--server",
        url,
        "--reason",
        "dup",
      ]);
      assert.equal(cancelWaiting.code, 0, cancelWaiting.stderr);
      assert.match(cancelWaiting.stderr, /job .* cancelled/);

      const follower = runAirunner(["monitor", running, "--server", url]);
      const started = Date.now();
      const cancelRunning = await runAirunner(["cancel", running, "--server", url]);
      assert.match(cancelRunning.stderr, /its worker stops it within a few seconds/);
      const followed = await follower;
      assert.equal(followed.code, 130);
      assert.ok(Date.now() - started < 8_000, `stopped after ${Date.now() - started} ms`);
      assert.match(followed.stdout, /PROCESS_ERROR the job was cancelled/);

      const list = await runAirunner(["list", "--server", url, "--json"]);
      const states = Object.fromEntries(
        (JSON.parse(list.stdout) as { id: string; state: string }[]).map((j) => [j.id, j.state]),
      );
      assert.equal(states[waiting], "cancelled");
      assert.equal(states[running], "cancelled");
      const again = await runAirunner(["cancel", waiting, "--server", url]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already finished \(cancelled\)/);
      await w.stop();
      await srv.stop();
    });
  });
}

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`a worker of several queues runs a job of each, the first queue's first [${protocol}]`, async () => {
    await withDataDir(async (dataDir) => {
      const port = freePort();
      const url = `http://127.0.0.1:${port}`;
      await using srv = await server(dataDir, port);
      const submit = async (queue: string, word: string) =>
        (await runAirunner(["submit", "--server", url, "--queue", queue, "--", "echo", word]))
          .stdout.trim();
      // test's job is the older one; the worker still takes build's first.
      const testJob = await submit("test", "tested");
      const buildJob = await submit("build", "built");
      // Both spellings: repeated, and comma-separated.
      const queues = protocol === "session"
        ? ["--queue", "build", "--queue", "test"]
        : ["--queue", "build,test"];
      const w = worker(protocol, url, ...queues);
      const built = await waitForState(url, buildJob, JobState.COMPLETED);
      const tested = await waitForState(url, testJob, JobState.COMPLETED);
      assert.equal(built.queue, "build");
      assert.equal(tested.queue, "test");
      const ms = (t: { seconds: bigint; nanos: number } | undefined) =>
        t === undefined ? NaN : Number(t.seconds) * 1000 + t.nanos / 1e6;
      assert.ok(
        ms(built.result?.completedAt) <= ms(tested.result?.startedAt),
        "one slot: build's job ran to its end before test's began",
      );
      const stopped = await w.stop();
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.match(stopped.stderr, /worker taking jobs from queues "build", "test" at /);
      await srv.stop();
    });
  });
}

Deno.test("worker --queue refuses a name given twice, an empty name and a bad one, before connecting", async () => {
  for (
    const [args, message] of [
      [["--queue", "build", "--queue", "build"], /--queue: "build" is given twice/],
      [["--queue", "build,test,build"], /--queue: "build" is given twice/],
      [["--queue", "build,"], /--queue: "build," has an empty queue name/],
      [["--queue", "no/such"], /--queue: may contain only letters/],
    ] as const
  ) {
    const run = await runAirunner(["worker", "--server", "http://127.0.0.1:1", ...args]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, message);
  }
});
