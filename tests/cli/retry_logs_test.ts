/**
 * The CLI's view of a retried job, as a user runs it: `airunner` as a
 * child process against a real server on a memory store in this process,
 * whose attempts this test plays the worker for (through the store: lease,
 * output, exit code). Checks the separator line on stderr (`logs`, `logs
 * -f`, `submit --follow`), `logs --attempt N` (replayed, out of range, and
 * followed live to the attempt's end while the job goes on) and the
 * attempts in `get --json`.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  JobResultSchema,
  JobState,
  OutputBatchEventSchema,
  StreamType,
} from "../../gen/job/v1/job_pb.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import type { MemoryJobStore } from "../../src/store/memory_store.ts";
import { airunnerInvocation, runAirunner } from "../support/airunner_process.ts";
import { withMemoryServer } from "../support/memory_server.ts";

const encoder = new TextEncoder();

/** Leases the next job of `queue` (waiting for it), as a worker would. */
async function lease(store: MemoryJobStore, queue = "default") {
  const [leased] = await store.dequeue(queue, {
    maxJobs: 1,
    visibilityTimeoutMs: 30_000,
    signal: AbortSignal.timeout(10_000),
  });
  assert.ok(leased !== undefined, "a job to lease");
  return leased;
}

/** Publishes one batch of output, numbered from `from` within the attempt. */
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

/** Ends the leased attempt with `exitCode`, as the worker reports it. */
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

/** Runs one whole attempt: its output, then its exit. */
async function attempt(
  store: MemoryJobStore,
  items: readonly [StreamType, string][],
  exitCode: number,
): Promise<string> {
  const { job, taskToken } = await lease(store);
  await publish(store, taskToken, 1n, items);
  await complete(store, taskToken, job.jobId, exitCode);
  return job.jobId;
}

const OUT = StreamType.STDOUT;
const ERR = StreamType.STDERR;

Deno.test("logs, logs --attempt and get --json of a job that failed twice", async () => {
  await withMemoryServer(async (url, store) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const { jobId } = await jobs.enqueueJob({
      queue: "default",
      jobParams: {
        command: "./flaky.sh",
        retry: { maxRetries: 1, minDelayMs: 1_000n, maxDelayMs: 1_000n },
      },
    });
    const cli = (...args: string[]) => runAirunner([args[0]!, "--server", url, ...args.slice(1)]);
    // Followed from before the first attempt, to its end.
    const follower = cli("logs", "-f", jobId);
    await attempt(store, [[OUT, "one\n"], [ERR, "err one\n"]], 1);
    await attempt(store, [[OUT, "two\n"]], 1);
    assert.equal((await store.getJob(jobId)).failureReason, "exhausted");
    const separator = "airunner: attempt 2 of 2 after exit 1, in 1 s\n";

    const followed = await follower;
    assert.equal(followed.code, 1, followed.stderr);
    assert.equal(followed.stdout, "one\ntwo\n");
    assert.equal(
      followed.stderr,
      `err one\n${separator}airunner: job ${jobId} failed: 2 of 2 attempts failed; last exit 1\n`,
    );

    const replayed = await cli("logs", jobId);
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.equal(replayed.stdout, "one\ntwo\n");
    assert.equal(replayed.stderr, `err one\n${separator}`, "the same line as the live stream");

    const first = await cli("logs", "--attempt", "1", jobId);
    assert.deepEqual([first.code, first.stdout, first.stderr], [0, "one\n", "err one\n"]);
    const second = await cli("logs", "--attempt", "2", jobId);
    assert.deepEqual([second.code, second.stdout, second.stderr], [0, "two\n", ""]);
    const followedFirst = await cli("logs", "-f", "--attempt", "1", jobId);
    assert.deepEqual([followedFirst.code, followedFirst.stdout], [1, "one\n"], "its exit code");
    const missing = await cli("logs", "--attempt", "3", jobId);
    assert.equal(missing.code, 2);
    assert.equal(
      missing.stderr,
      `airunner: error: --attempt: job ${jobId} has no attempt 3 (it has attempts 1-2)\n`,
    );
    assert.equal(missing.stdout, "");

    const got = await cli("get", "--json", jobId);
    assert.equal(got.code, 0, got.stderr);
    const json = JSON.parse(got.stdout);
    assert.equal(json.failureReason, "exhausted");
    assert.equal(json.rerunOf, null);
    assert.equal(json.notBefore, null);
    assert.deepEqual(json.retry, {
      maxRetries: 1,
      retryOn: null,
      minDelayMs: 1_000,
      maxDelayMs: 1_000,
      retryOnTimeout: true,
    });
    assert.deepEqual(
      json.attempts.map((
        a: Record<string, unknown>,
      ) => [a.number, a.outcome, a.exitCode, a.firstSequence, a.lastSequence]),
      // Attempt 1's two items, its notice (3), attempt 2's item.
      [[1, "failed", 1, 1, 2], [2, "failed", 1, 4, 4]],
    );
    const human = await cli("get", jobId);
    assert.match(human.stdout, /^attempt 1: +failed, exit 1, .*events 1\.\.2$/m);
    assert.match(human.stdout, /^failure: +exhausted /m);
  });
});

/** A child airunner whose stdout is read as it comes. */
function spawnAirunner(args: readonly string[]) {
  const { command, args: argv } = airunnerInvocation(args);
  const child = new Deno.Command(command, {
    args: argv,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  return {
    /** Reads stdout until it holds `text`. */
    async until(text: string): Promise<void> {
      while (!stdout.includes(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stdout ended before "${text}": ${stdout}`);
        stdout += value;
      }
    },
    /** Waits for the exit (within 20 s); all of stdout and stderr. */
    async result() {
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        stdout += value;
      }
      const { code } = await child.status;
      clearTimeout(timer);
      return { code, stdout, stderr: await stderr };
    },
  };
}

Deno.test("logs -f --attempt follows the running attempt and stops at its end", async () => {
  await withMemoryServer(async (url, store) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const { jobId } = await jobs.enqueueJob({
      queue: "default",
      jobParams: {
        command: "./flaky.sh",
        retry: { maxRetries: 2, minDelayMs: 60_000n, maxDelayMs: 60_000n },
      },
    });
    const { taskToken } = await lease(store);
    const next = await publish(store, taskToken, 1n, [[OUT, "one\n"]]);
    const follower = spawnAirunner(["logs", "--server", url, "-f", "--attempt", "1", jobId]);
    await follower.until("one\n");
    await publish(store, taskToken, next, [[OUT, "more\n"]]);
    await follower.until("more\n");
    await complete(store, taskToken, jobId, 3);
    const result = await follower.result();
    assert.equal(result.code, 3, result.stderr);
    assert.equal(result.stdout, "one\nmore\n");
    assert.equal(result.stderr, "", "one attempt's output alone: no separator");
    const job = await store.getJob(jobId);
    assert.equal(job.state, JobState.SCHEDULED, "the job goes on; only the attempt ended");

    // The job waits out its backoff: list and get say until when.
    const got = JSON.parse((await runAirunner(["get", "--server", url, "--json", jobId])).stdout);
    assert.ok(Date.parse(got.notBefore) > Date.now() + 50_000, got.notBefore);
    const listed = await runAirunner(["list", "--server", url]);
    assert.match(listed.stdout, / scheduled \(retry in (59|60)s\) /);
    const logs = await runAirunner(["logs", "--server", url, jobId]);
    assert.equal(logs.stdout, "one\nmore\n");
    assert.equal(logs.stderr, "airunner: attempt 2 of 3 after exit 3, in 60 s\n");
    await jobs.cancelJob({ jobId, reason: "done testing" });
  });
});

Deno.test("submit --follow prints the separator between attempts, with --json too", async () => {
  for (const json of [false, true]) {
    await withMemoryServer(async (url, store) => {
      const submit = runAirunner([
        "submit",
        "--server",
        url,
        "--retries",
        "1",
        "--retry-delay",
        "1s..1s",
        "--follow",
        ...(json ? ["--json"] : []),
        "--",
        "./flaky.sh",
      ]);
      await attempt(store, [[OUT, "first\n"]], 1);
      await attempt(store, [[OUT, "second\n"]], 0);
      const r = await submit;
      assert.equal(r.code, 0, r.stderr);
      const separator = "airunner: attempt 2 of 2 after exit 1, in 1 s";
      if (json) {
        assert.equal(r.stderr, `first\n${separator}\nsecond\n`, "all output on stderr");
        assert.equal(JSON.parse(r.stdout).state, "completed");
      } else {
        assert.equal(r.stdout, "first\nsecond\n");
        assert.deepEqual(r.stderr.split("\n").slice(1), [separator, ""], r.stderr);
      }
    });
  }
});
