/**
 * Retries over a real server: the server's default policy, validation of a
 * job's policy, RedriveJobs (which dead letters it selects, dry runs) and
 * RerunJob (a new job with every parameter, secrets included), and the
 * worker's name in the attempts it runs, over both worker protocols.
 */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { JobResultSchema, JobState, RetryPolicySchema } from "../../gen/job/v1/job_pb.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { sessionApiTo, unaryApiTo, withMemoryServer } from "../support/memory_server.ts";
import { deadLetter } from "../support/dead_letter.ts";

Deno.test("RedriveJobs selects dead letters by queue, metadata, exit code and finish time", async () => {
  await withMemoryServer(async (url, store) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const a = await deadLetter(store, "alpha", 1, { team: "x" });
    const b = await deadLetter(store, "alpha", 2, { team: "y" });
    const c = await deadLetter(store, "beta", 1, { team: "x" });
    // Failed without a retry applying: no dead letter.
    const { jobId: plain } = await jobs.enqueueJob({
      queue: "alpha",
      jobParams: { command: "false" },
    });
    const [leased] = await store.dequeue("alpha", {
      maxJobs: 1,
      visibilityTimeoutMs: 30_000,
      signal: AbortSignal.timeout(5_000),
    });
    await store.complete(leased!.taskToken, create(JobResultSchema, { jobId: plain, exitCode: 1 }));

    const ids = async (req: Parameters<typeof jobs.redriveJobs>[0]) =>
      (await jobs.redriveJobs({ ...req, dryRun: true })).jobs.map((j) => j.jobId);
    assert.deepEqual(
      await ids({}),
      [a, b, c],
      "every dead letter, oldest first; not the plain failure",
    );
    assert.deepEqual(await ids({ queue: "alpha" }), [a, b]);
    assert.deepEqual(await ids({ metadata: { team: "x" } }), [a, c]);
    assert.deepEqual(await ids({ exitCodes: [2] }), [b]);
    assert.deepEqual(
      await ids({ finishedAfter: timestampFromMs(Date.now() + 60_000) }),
      [],
      "none finished in the future",
    );
    assert.equal((await store.getJob(a)).state, JobState.FAILED, "a dry run changes nothing");

    const { jobs: back } = await jobs.redriveJobs({ queue: "alpha", metadata: { team: "x" } });
    assert.deepEqual(back.map((j) => [j.jobId, j.state]), [[a, JobState.SCHEDULED]]);
    const again = await store.getJob(a);
    assert.equal(again.state, JobState.SCHEDULED);
    assert.equal(again.attempts.length, 2, "its history stays");
    assert.deepEqual(await ids({ queue: "alpha" }), [b], "a redriven job is no dead letter");
  });
});

Deno.test("RedriveJobs and RerunJob refuse bad input, naming the field", async () => {
  await withMemoryServer(async (url) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const refusals: [Promise<unknown>, Code, RegExp][] = [
      [jobs.redriveJobs({ queue: "bad queue" }), Code.InvalidArgument, /queue/],
      [jobs.redriveJobs({ exitCodes: [256] }), Code.InvalidArgument, /exit_codes\[0\]/],
      [jobs.rerunJob({ jobId: "nope" }), Code.InvalidArgument, /job_id: is not a UUID/],
      [
        jobs.rerunJob({ jobId: "01900000-0000-7000-8000-000000000000" }),
        Code.NotFound,
        /not found/,
      ],
    ];
    for (const [call, code, message] of refusals) {
      await assert.rejects(call, (error: unknown) => {
        const e = ConnectError.from(error);
        assert.equal(e.code, code, e.message);
        assert.match(e.rawMessage, message);
        return true;
      });
    }
  });
});

Deno.test("RerunJob enqueues a copy with every parameter, secret values included, and rerun_of", async () => {
  await withMemoryServer(async (url, store) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const { jobId } = await jobs.enqueueJob({
      queue: "default",
      jobParams: {
        command: "deploy",
        args: ["--prod"],
        secretEnvironment: { TOKEN: "s3cr3t" },
        retry: { maxRetries: 3 },
        priority: 7,
        delayMs: 3_600_000n,
      },
    });
    const { job } = await jobs.rerunJob({ jobId, requestId: "rerun-1" });
    assert.ok(job !== undefined);
    assert.notEqual(job.jobId, jobId);
    assert.equal(job.jobParams?.rerunOf, jobId);
    assert.deepEqual(job.jobParams?.secretEnvironment, { TOKEN: "***" }, "readers see no secret");
    const stored = await store.getJob(job.jobId);
    assert.deepEqual(stored.jobParams?.secretEnvironment, { TOKEN: "s3cr3t" });
    assert.deepEqual(stored.jobParams?.args, ["--prod"]);
    assert.equal(stored.jobParams?.retry?.maxRetries, 3);
    assert.equal(stored.jobParams?.priority, 7, "the priority stays");
    assert.equal(stored.jobParams?.delayMs, 0n, "a rerun runs now, not after the original's delay");
    assert.equal(stored.notBefore, undefined);
    const repeat = await jobs.rerunJob({ jobId, requestId: "rerun-1" });
    assert.equal(repeat.job?.jobId, job.jobId, "the request_id makes it idempotent");
  });
});

Deno.test("the server's default retry policy applies to jobs that name none", async () => {
  const defaultRetry = create(RetryPolicySchema, { maxRetries: 4, minDelayMs: 2_000n });
  await withMemoryServer(async (url, store) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const { jobId: plain } = await jobs.enqueueJob({
      queue: "default",
      jobParams: { command: "true" },
    });
    const { jobId: own } = await jobs.enqueueJob({
      queue: "default",
      jobParams: { command: "true", retry: { maxRetries: 0 } },
    });
    const { results } = await jobs.enqueueJobs({
      jobs: [{ queue: "default", jobParams: { command: "true" } }],
    });
    assert.ok(results[0]?.outcome.case === "job");
    const batched = results[0].outcome.value.jobId;
    assert.equal((await store.getJob(plain)).jobParams?.retry?.maxRetries, 4);
    assert.equal((await store.getJob(batched)).jobParams?.retry?.maxRetries, 4);
    assert.equal((await store.getJob(own)).jobParams?.retry?.maxRetries, 0, "its own wins");
  }, { defaultRetry });
});

Deno.test("a retry policy out of range is invalid_argument naming the field and range, enqueuing nothing", async () => {
  await withMemoryServer(async (url, store) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const refusals: [Parameters<typeof jobs.enqueueJob>[0]["jobParams"], RegExp][] = [
      [{ command: "x", retry: { maxRetries: 101 } }, /job_params\.retry\.max_retries: .*100/],
      [
        { command: "x", retry: { maxRetries: 1, retryOnExitCodes: [{ first: 0, last: 3 }] } },
        /retry_on_exit_codes\[0\]\.first/,
      ],
      [{ command: "x", retry: { maxRetries: 1, minDelayMs: 50n } }, /min_delay_ms: .*100/],
      [
        { command: "x", retry: { maxRetries: 1, minDelayMs: 5_000n, maxDelayMs: 1_000n } },
        /max_delay_ms/,
      ],
    ];
    for (const [jobParams, message] of refusals) {
      await assert.rejects(jobs.enqueueJob({ queue: "default", jobParams }), (error: unknown) => {
        const e = ConnectError.from(error);
        assert.equal(e.code, Code.InvalidArgument);
        assert.match(e.rawMessage, message);
        return true;
      });
    }
    assert.equal((await store.listJobs({ page: 1, pageSize: 10 })).jobs.length, 0);
  });
});

Deno.test("each attempt names the worker that ran it, over unary calls and sessions", async () => {
  await withMemoryServer(async (url) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const { jobId } = await jobs.enqueueJob({ queue: "default", jobParams: { command: "true" } });
    const unary = unaryApiTo(url, "unary-worker");
    const [first] = await unary.claim("default", {
      maxJobs: 1,
      visibilityTimeoutSeconds: 30,
      signal: AbortSignal.timeout(5_000),
    });
    await unary.extendLease(first!.taskToken, "default", 0);
    const session = sessionApiTo(url, { workerName: "session-worker" });
    try {
      const [second] = await session.claim("default", {
        maxJobs: 1,
        visibilityTimeoutSeconds: 30,
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(second?.job.jobId, jobId);
      const { job } = await jobs.getJob({ jobId });
      assert.deepEqual(
        job?.attempts.map((a) => [a.number, a.worker, a.outcome]),
        [[1, "unary-worker", "handed_back"], [2, "session-worker", ""]],
      );
    } finally {
      await session.close();
    }
  });
});
