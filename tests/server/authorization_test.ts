import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  JobEventsService,
  JobService,
  JobState,
  ScheduleService,
} from "../../gen/job/v1/job_pb.ts";
import { ApiTokenVerifier, mintApiToken } from "../../src/auth/jwt.ts";
import { generateP256KeyPair } from "../../src/auth/keys.ts";
import { procedureName, type Scope, SCOPE_OF_PROCEDURE } from "../../src/auth/scopes.ts";
import { type AirunnerClients, createAirunnerClients } from "../../src/protocol/transport.ts";
import { startServer } from "../../src/server/http_server.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { memoryLog } from "../support/memory_log.ts";
import { deadLetter } from "../support/dead_letter.ts";

const keys = await generateP256KeyPair();

async function tokenFor(subject: string, scopes: Scope[]) {
  return await mintApiToken(keys.privateKey, { subject, scopes, ttlSeconds: 600 });
}

async function withAuthServer(
  fn: (
    url: string,
    clientFor: (token?: string) => AirunnerClients,
    store: MemoryJobStore,
  ) => Promise<void>,
) {
  const store = new MemoryJobStore();
  const log = memoryLog();
  const server = await startServer({
    store,
    logger: log.logger,
    hostname: "127.0.0.1",
    port: 0,
    maxDequeueWaitMs: 200,
    auth: new ApiTokenVerifier([keys.publicKey]),
  });
  const tokens: string[] = [];
  try {
    await fn(server.url, (token) => {
      if (token !== undefined) tokens.push(token);
      return createAirunnerClients({
        serverUrl: server.url,
        ...(token === undefined ? {} : { token }),
      });
    }, store);
  } finally {
    await server.close();
    await store.close();
  }
  const logged = JSON.stringify(log.records());
  for (const token of tokens) assert.ok(!logged.includes(token), "a token reached the log");
  assert.ok(!logged.includes("s3cr3t-value"), "an environment value reached the log");
}

async function rejectsWith(promise: Promise<unknown>, code: Code, pattern: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    const e = ConnectError.from(error);
    assert.equal(Code[e.code], Code[code], e.message);
    assert.match(e.rawMessage, pattern);
    return true;
  });
}

async function drain(stream: AsyncIterable<unknown>) {
  for await (const _ of stream) { /* the answer is the stream's end or its error */ }
}

Deno.test("every job.v1 procedure has a scope, and only admin is left to the default", () => {
  const procedures = [JobService, JobEventsService, ScheduleService].flatMap((service) =>
    service.methods.map((method) => procedureName(service.typeName, method.name))
  );
  for (const procedure of procedures) {
    assert.ok(SCOPE_OF_PROCEDURE.has(procedure), `${procedure} has no scope`);
  }
  assert.equal(SCOPE_OF_PROCEDURE.size, procedures.length);
});

Deno.test("/health is open; every RPC without a token is Unauthenticated", async () => {
  await withAuthServer(async (url, clientFor) => {
    const health = await fetch(`${url}/health`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const anonymous = clientFor();
    await rejectsWith(
      anonymous.jobs.enqueueJob({ queue: "default", jobParams: { command: "true" } }),
      Code.Unauthenticated,
      /missing bearer token/,
    );
    await rejectsWith(anonymous.jobs.listJobs({}), Code.Unauthenticated, /missing bearer token/);
    await rejectsWith(
      drain(anonymous.jobs.dequeueJob({ queue: "default" })),
      Code.Unauthenticated,
      /missing bearer token/,
    );
    await rejectsWith(
      drain(anonymous.events.streamJobEvents({ jobId: crypto.randomUUID() })),
      Code.Unauthenticated,
      /missing bearer token/,
    );
    const forged = clientFor("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
    await rejectsWith(forged.jobs.listJobs({}), Code.Unauthenticated, /algorithm none/);
  });
});

Deno.test("a submit token runs and watches jobs but cannot act as a worker", async () => {
  await withAuthServer(async (_url, clientFor, store) => {
    const submitter = clientFor(await tokenFor("ci", ["submit"]));
    const { jobId } = await submitter.jobs.enqueueJob({
      queue: "default",
      jobParams: { command: "true", environment: { API_KEY: "s3cr3t-value" } },
    });
    assert.equal((await submitter.jobs.getJob({ jobId })).job?.jobId, jobId);
    assert.equal((await submitter.jobs.listJobs({})).jobs.length, 1);
    await rejectsWith(
      drain(submitter.jobs.dequeueJob({ queue: "default" })),
      Code.PermissionDenied,
      /token of "ci" has scope submit; DequeueJob needs worker/,
    );
    await rejectsWith(
      submitter.jobs.completeJob({ taskToken: "x" }),
      Code.PermissionDenied,
      /CompleteJob needs worker/,
    );
    await rejectsWith(
      submitter.jobs.updateJob({ taskToken: "x" }),
      Code.PermissionDenied,
      /UpdateJob needs worker/,
    );
    const { jobs } = await store.listJobs({ page: 1, pageSize: 10 });
    assert.deepEqual(
      jobs.map((j) => j.state),
      [JobState.SCHEDULED],
      "refused calls changed nothing",
    );
  });
});

Deno.test("a worker token takes jobs but cannot submit, list or read them", async () => {
  await withAuthServer(async (_url, clientFor) => {
    const admin = clientFor(await tokenFor("ops", ["admin"]));
    await admin.jobs.enqueueJob({ queue: "default", jobParams: { command: "true" } });
    const worker = clientFor(await tokenFor("worker-1", ["worker"]));
    await rejectsWith(
      worker.jobs.enqueueJob({ queue: "default", jobParams: { command: "true" } }),
      Code.PermissionDenied,
      /EnqueueJob needs submit/,
    );
    await rejectsWith(worker.jobs.listJobs({}), Code.PermissionDenied, /ListJobs needs submit/);
    await rejectsWith(
      drain(worker.events.streamJobEvents({ jobId: crypto.randomUUID() })),
      Code.PermissionDenied,
      /StreamJobEvents needs submit/,
    );
    let taskToken = "";
    let jobId = "";
    for await (const res of worker.jobs.dequeueJob({ queue: "default" })) {
      taskToken = res.taskToken;
      jobId = res.job?.jobId ?? "";
    }
    assert.notEqual(taskToken, "");
    await worker.jobs.completeJob({ taskToken, jobResult: { jobId, success: true, exitCode: 0 } });
    assert.equal((await admin.jobs.getJob({ jobId })).job?.state, JobState.COMPLETED);
  });
});

Deno.test("an admin token and a token without a scope claim may call everything", async () => {
  await withAuthServer(async (_url, clientFor) => {
    const unscopedToken = await new (await import("jose")).SignJWT({})
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("airunner")
      .setSubject("legacy")
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(keys.privateKey);
    for (const token of [await tokenFor("ops", ["admin"]), unscopedToken]) {
      const client = clientFor(token);
      const { jobId } = await client.jobs.enqueueJob({
        queue: "default",
        jobParams: { command: "true" },
      });
      let got = "";
      for await (const res of client.jobs.dequeueJob({ queue: "default" })) {
        got = res.job?.jobId ?? "";
      }
      assert.equal(got, jobId);
    }
  });
});

Deno.test("a job's stored secrets run again only for admin: rerun and redrive refuse a submit token", async () => {
  await withAuthServer(async (_url, clientFor, store) => {
    const submit = clientFor(await tokenFor("alice", ["submit"])).jobs;
    const admin = clientFor(await tokenFor("ops", ["admin"])).jobs;
    const plain = await deadLetter(store, "q", 1);
    const secret = await deadLetter(store, "q", 1, {}, { TOKEN: "s3cr3t-value" });
    await rejectsWith(
      submit.rerunJob({ jobId: secret }),
      Code.PermissionDenied,
      new RegExp(`${secret} has secret environment; .*needs admin scope`),
    );
    await rejectsWith(
      submit.redriveJobs({ queue: "q" }),
      Code.PermissionDenied,
      new RegExp(`${secret} has secret environment`),
    );
    assert.equal(
      (await store.getJob(plain)).state,
      JobState.FAILED,
      "a refused redrive moves nothing",
    );
    // A dry run shows what would go back; a job without secrets reruns and redrives at submit scope.
    assert.deepEqual(
      (await submit.redriveJobs({ queue: "q", dryRun: true })).jobs.map((j) => j.jobId),
      [plain, secret],
    );
    const rerun = await submit.rerunJob({ jobId: plain });
    assert.equal(rerun.job?.jobParams?.rerunOf, plain);
    await admin.rerunJob({ jobId: secret });
    const redriven = (await admin.redriveJobs({ queue: "q" })).jobs.map((j) => j.jobId);
    assert.deepEqual(redriven, [plain, secret]);
  });
});
