/**
 * EnqueueJobs over a real server: results per item in request order, an
 * invalid item refuses the whole call before anything is stored, and a
 * request_id conflict fails only its own item.
 */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { JobState } from "../../gen/job/v1/job_pb.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { MAX_ENQUEUE_BATCH } from "../../src/protocol/limits.ts";
import { withMemoryServer } from "../support/memory_server.ts";

const job = (arg: string, requestId = "") => ({
  requestId,
  queue: "default",
  jobParams: { command: "echo", args: [arg] },
});

Deno.test("EnqueueJobs answers each job in order; a conflict fails only its item", async () => {
  await withMemoryServer(async (url, store) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const first = await jobs.enqueueJob(job("a", "key-a"));
    const { results } = await jobs.enqueueJobs({
      jobs: [job("a", "key-a"), job("b", "key-a"), job("c"), job("d", "key-d")],
    });
    assert.deepEqual(results.map((r) => r.requestId), ["key-a", "key-a", "", "key-d"]);
    assert.deepEqual(results.map((r) => r.outcome.case), ["job", "error", "job", "job"]);
    assert.deepEqual(results.map((r) => r.created), [false, false, true, true]);
    const [repeat, conflict, fresh] = results;
    assert.ok(repeat?.outcome.case === "job");
    assert.equal(repeat.outcome.value.jobId, first.jobId);
    assert.ok(conflict?.outcome.case === "error");
    assert.equal(conflict.outcome.value.code, Code.AlreadyExists);
    assert.match(conflict.outcome.value.message, /key-a/);
    assert.ok(fresh?.outcome.case === "job");
    assert.equal(fresh.outcome.value.state, JobState.SCHEDULED);
    const page = await store.listJobs({ page: 1, pageSize: 10 });
    assert.equal(page.jobs.length, 3);
  });
});

Deno.test("EnqueueJobs refuses a whole call with an invalid item, naming it, storing nothing", async () => {
  await withMemoryServer(async (url, store) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const refusals: [Parameters<typeof jobs.enqueueJobs>[0], RegExp][] = [
      [
        { jobs: [job("a"), job("b"), { queue: "default", jobParams: { command: " " } }] },
        /^jobs\[2\]\.job_params\.command: is required$/,
      ],
      [{ jobs: [job("a"), { ...job("b"), queue: "bad queue" }] }, /^jobs\[1\]\.queue: /],
      [
        { jobs: [{ ...job("a"), requestId: "x".repeat(300) }] },
        /^jobs\[0\]\.request_id: is 300 characters, more than the limit of 256$/,
      ],
      [
        { jobs: Array.from({ length: MAX_ENQUEUE_BATCH + 1 }, () => job("a")) },
        /^jobs: has 1001 jobs, more than the limit of 1000$/,
      ],
    ];
    for (const [request, message] of refusals) {
      await assert.rejects(jobs.enqueueJobs(request), (error: unknown) => {
        const e = ConnectError.from(error);
        assert.equal(Code[e.code], Code[Code.InvalidArgument]);
        assert.match(e.rawMessage, message);
        return true;
      });
    }
    assert.equal((await store.listJobs({ page: 1, pageSize: 10 })).jobs.length, 0);
    assert.deepEqual((await jobs.enqueueJobs({ jobs: [] })).results, []);
  });
});

Deno.test("a commit or branch that reads as a git option is invalid_argument on EnqueueJob and EnqueueJobs; nothing is stored", async () => {
  await withMemoryServer(async (url, store) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    const hostile = "--upload-pack=touch pwned; false";
    const params = (extra: object) => ({ command: "true", repository: "file:///repo", ...extra });
    const refused = async (call: Promise<unknown>, message: RegExp) =>
      await assert.rejects(call, (error: unknown) => {
        const e = ConnectError.from(error);
        assert.equal(Code[e.code], Code[Code.InvalidArgument]);
        assert.match(e.rawMessage, message);
        return true;
      });
    await refused(
      jobs.enqueueJob({ queue: "default", jobParams: params({ commit: hostile }) }),
      /^job_params\.commit: must be a hex object id \(4 to 64 hex digits\)$/,
    );
    await refused(
      jobs.enqueueJob({ queue: "default", jobParams: params({ branch: hostile }) }),
      /^job_params\.branch: is not a valid git branch name: must not begin with '-'$/,
    );
    await refused(
      jobs.enqueueJob({ queue: "default", jobParams: params({ repository: hostile }) }),
      /^job_params\.repository: must not begin with '-'$/,
    );
    await refused(
      jobs.enqueueJobs({
        jobs: [job("a"), { queue: "default", jobParams: params({ commit: hostile }) }],
      }),
      /^jobs\[1\]\.job_params\.commit: must be a hex object id/,
    );
    assert.equal((await store.listJobs({ page: 1, pageSize: 10 })).jobs.length, 0);
  });
});
