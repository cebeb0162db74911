/**
 * `airunner logs` as a user runs it, against a real server on a memory
 * store in this process whose worker this test plays (lease, output, exit):
 * without -f it prints what is stored and exits at once, even while the job
 * keeps printing; `--json` prints one object per event line, with and
 * without -f; several ids print whole, prefixed lines.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { JobResultSchema, OutputBatchEventSchema, StreamType } from "../../gen/job/v1/job_pb.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import type { MemoryJobStore } from "../../src/store/memory_store.ts";
import { runAirunner } from "../support/airunner_process.ts";
import { withMemoryServer } from "../support/memory_server.ts";

const encoder = new TextEncoder();
const OUT = StreamType.STDOUT;
const ERR = StreamType.STDERR;

async function lease(store: MemoryJobStore) {
  const [leased] = await store.dequeue("default", {
    maxJobs: 1,
    visibilityTimeoutMs: 30_000,
    signal: AbortSignal.timeout(10_000),
  });
  assert.ok(leased !== undefined, "a job to lease");
  return leased;
}

/** Publishes one batch numbered from `from` within the attempt; returns the next number. */
async function publish(
  store: MemoryJobStore,
  taskToken: string,
  from: bigint,
  items: readonly [StreamType, string][],
): Promise<bigint> {
  const batch = create(OutputBatchEventSchema, {
    outputs: items.map(([streamType, text]) => ({ streamType, output: encoder.encode(text) })),
    startSequence: from,
    endSequence: from + BigInt(items.length) - 1n,
    firstTimestampMs: BigInt(Date.now()),
  });
  await store.publishEvents(taskToken, [
    makeEvent(from, Date.now(), { case: "outputBatch", value: batch }),
  ]);
  return from + BigInt(items.length);
}

async function complete(store: MemoryJobStore, taskToken: string, jobId: string, exitCode: number) {
  await store.complete(
    taskToken,
    create(JobResultSchema, {
      jobId,
      success: exitCode === 0,
      exitCode,
      errorMessage: exitCode === 0 ? "" : `exited with code ${exitCode}`,
    }),
  );
}

async function enqueue(url: string, metadata: Record<string, string> = {}): Promise<string> {
  const { jobs } = createAirunnerClients({ serverUrl: url });
  const { jobId } = await jobs.enqueueJob({
    queue: "default",
    jobParams: { command: "./job.sh", metadata },
  });
  return jobId;
}

Deno.test("logs without -f of a job that prints without pause returns at once", async () => {
  await withMemoryServer(async (url, store) => {
    const jobId = await enqueue(url);
    const { job, taskToken } = await lease(store);
    let next = 1n;
    let line = 0;
    for (; line < 20; line++) {
      next = await publish(store, taskToken, next, [[OUT, `line ${line}\n`]]);
    }
    // The job goes on printing, a line every 5 ms, while logs runs.
    let printing = true;
    const printer = (async () => {
      while (printing) {
        next = await publish(store, taskToken, next, [[OUT, `line ${line++}\n`]]);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      const started = performance.now();
      const logs = await runAirunner(["logs", "--server", url, jobId], { timeoutMs: 10_000 });
      const tookMs = performance.now() - started;
      assert.equal(logs.code, 0, logs.stderr);
      assert.ok(tookMs < 2_000, `logs took ${Math.round(tookMs)} ms`);
      const lines = logs.stdout.split("\n").slice(0, -1);
      assert.ok(lines.length >= 20, logs.stdout);
      assert.deepEqual(lines, lines.map((_, i) => `line ${i}`), "what was stored, in order");
      // --json too.
      const json = await runAirunner(["logs", "--json", "--server", url, jobId], {
        timeoutMs: 10_000,
      });
      assert.equal(json.code, 0, json.stderr);
      const objects = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
      assert.ok(objects.length >= 20);
      assert.deepEqual(objects[3], {
        jobId,
        sequence: 4,
        timestamp: objects[3].timestamp,
        type: "output",
        stream: "stdout",
        text: "line 3\n",
      });
    } finally {
      printing = false;
      await printer;
    }
    await complete(store, taskToken, job.jobId, 0);
  });
});

Deno.test("logs --json, with and without -f: one object per event line", async () => {
  await withMemoryServer(async (url, store) => {
    const jobId = await enqueue(url);
    const cli = (...args: string[]) => runAirunner(["logs", "--server", url, ...args]);
    const follower = cli("-f", "--json", jobId);
    const { taskToken } = await lease(store);
    const next = await publish(store, taskToken, 1n, [[OUT, "out\n"], [ERR, "err\n"]]);
    await publish(store, taskToken, next, [[OUT, "bye\n"]]);
    await complete(store, taskToken, jobId, 3);
    const followed = await follower;
    assert.equal(followed.code, 3, followed.stderr);
    assert.equal(followed.stderr, `airunner: job ${jobId} failed: exited with code 3\n`);
    const replayed = await cli("--json", jobId);
    assert.equal(replayed.code, 0, replayed.stderr);
    for (const out of [followed.stdout, replayed.stdout]) {
      const lines = out.trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(
        lines.map((l) => [l.jobId, l.sequence, l.type, l.stream, l.text]),
        [
          [jobId, 1, "output", "stdout", "out\n"],
          [jobId, 2, "output", "stderr", "err\n"],
          [jobId, 3, "output", "stdout", "bye\n"],
        ],
      );
      for (const l of lines) assert.match(l.timestamp, /^\d{4}-\d\d-\d\dT.*Z$/);
    }
  });
});

Deno.test("logs of several jobs: whole lines, prefixed, stdout and stderr apart", async () => {
  await withMemoryServer(async (url, store) => {
    const first = await enqueue(url, { shard: "one" });
    const second = await enqueue(url, { shard: "two" });
    const a = await lease(store);
    const b = await lease(store);
    // Half lines of both jobs, finished in a later batch.
    let na = await publish(store, a.taskToken, 1n, [[OUT, "a-"], [ERR, "a-err\n"]]);
    let nb = await publish(store, b.taskToken, 1n, [[OUT, "b-"]]);
    na = await publish(store, a.taskToken, na, [[OUT, "out\nrest"]]);
    nb = await publish(store, b.taskToken, nb, [[OUT, "out\n"]]);
    await complete(store, a.taskToken, a.job.jobId, 0);
    await complete(store, b.taskToken, b.job.jobId, 4);
    const cli = (...args: string[]) => runAirunner(["logs", "--server", url, ...args]);
    const short = (id: string) => id.slice(-12, -4);

    const both = await cli(first, second);
    assert.equal(both.code, 0, both.stderr);
    assert.equal(
      both.stdout,
      `${short(first)} | a-out\n${short(first)} | rest\n${short(second)} | b-out\n`,
    );
    assert.equal(both.stderr, `${short(first)} | a-err\n`);

    const followed = await cli("-f", "--metadata", "shard=two", "--prefix", "shard");
    assert.equal(followed.code, 4, followed.stderr);
    assert.equal(followed.stdout, "two | b-out\n");

    const worst = await cli("-f", "--prefix", "none", first, second);
    assert.equal(worst.code, 4, "the worst exit code");
    assert.equal(worst.stdout.split("\n").sort().join("\n"), "\na-out\nb-out\nrest");

    const mixed = await cli(first, "--queue", "default");
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /give job ids or --metadata\/--queue, not both/);
    const none = await cli("--metadata", "shard=three");
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no job matches --metadata shard=three/);
  });
});

Deno.test("logs without -f of a job waiting out its retry prints the notice and returns", async () => {
  await withMemoryServer(async (url, store) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const { jobId } = await jobs.enqueueJob({
      queue: "default",
      jobParams: {
        command: "./flaky.sh",
        retry: { maxRetries: 1, minDelayMs: 60_000n, maxDelayMs: 60_000n },
      },
    });
    const { taskToken } = await lease(store);
    await publish(store, taskToken, 1n, [[OUT, "one\n"], [ERR, "err one\n"]]);
    await complete(store, taskToken, jobId, 1);
    const started = performance.now();
    const logs = await runAirunner(["logs", "--server", url, jobId], { timeoutMs: 10_000 });
    assert.ok(performance.now() - started < 2_000);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, "one\n");
    assert.equal(logs.stderr, "err one\nairunner: attempt 2 of 2 after exit 1, in 60 s\n");
    await jobs.cancelJob({ jobId, reason: "done testing" });
  });
});
