import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  EventType,
  type JobEvent,
  JobParamsSchema,
  JobState,
  ProcessType,
  StreamType,
} from "../../gen/job/v1/job_pb.ts";
import { systemClock } from "../../src/clock.ts";
import { defaultExecutionConfig } from "../../src/server/execution_config.ts";
import type { JobStore } from "../../src/store/job_store.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import {
  executeJob,
  type JobExecutionDeps,
  TIMEOUT_EXIT_CODE,
} from "../../src/worker/job_execution.ts";
import { LastEventsRefusedError, type WorkerApi } from "../../src/worker/worker_api.ts";
import { makeTestRepo } from "../support/git_repo.ts";
import { memoryLog } from "../support/memory_log.ts";
import { storeWorkerApi } from "../support/store_worker_api.ts";

/** Where these tests' jobs check out repositories. */
const WORKSPACES = `${Deno.env.get("TMPDIR") ?? "/tmp"}/airunner-test-workspaces`;

/** Enqueues a job with `params` and leases it, as a worker's claim would. */
async function leaseJob(
  store: JobStore,
  params: MessageInitShape<typeof JobParamsSchema>,
  visibilitySeconds = 30,
) {
  const { job } = await store.enqueue({
    requestId: "",
    queue: "default",
    params: create(JobParamsSchema, params),
    executionConfig: defaultExecutionConfig(),
  });
  const [leased] = await store.dequeue("default", {
    maxJobs: 1,
    visibilityTimeoutMs: visibilitySeconds * 1000,
    signal: AbortSignal.timeout(1000),
  });
  return { jobId: job.jobId, leased: leased! };
}

/** Execution settings for tests: real processes, short grace periods. */
function testDeps(api: WorkerApi, overrides: Partial<JobExecutionDeps> = {}): JobExecutionDeps {
  return {
    api,
    clock: systemClock,
    logger: memoryLog().logger,
    baseEnv: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    visibilityTimeoutSeconds: 30,
    killGraceMs: 1000,
    workspaceRoot: WORKSPACES,
    keepWorkspaces: false,
    ...overrides,
  };
}

interface Run {
  store: JobStore;
  jobId: string;
  events: JobEvent[];
}

async function runJob(
  params: MessageInitShape<typeof JobParamsSchema>,
  options: {
    api?: (store: JobStore) => WorkerApi;
    stopAfterMs?: number;
    visibilitySeconds?: number;
  } = {},
): Promise<Run & { outcome: Awaited<ReturnType<typeof executeJob>> }> {
  const store = new MemoryJobStore();
  const visibilitySeconds = options.visibilitySeconds ?? 30;
  const { jobId, leased } = await leaseJob(store, params, visibilitySeconds);
  const deps = testDeps((options.api ?? storeWorkerApi)(store), {
    baseEnv: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      FROM_WORKER: "w",
      AIRUNNER_TOKEN: "secret",
    },
    visibilityTimeoutSeconds: visibilitySeconds,
  });
  const stop = new AbortController();
  const timer = options.stopAfterMs === undefined
    ? undefined
    : setTimeout(() => stop.abort(), options.stopAfterMs);
  const outcome = await executeJob(leased, deps, stop.signal);
  clearTimeout(timer);
  const events: JobEvent[] = [];
  const stream = store.streamEvents(jobId, {
    fromSequence: 0n,
    fromTimestampMs: 0,
    eventTypes: new Set(),
    signal: AbortSignal.timeout(500),
  });
  try {
    for await (const e of stream) events.push(e);
  } catch {
    // A job that was not finished keeps its stream open until the timeout.
  }
  await store.close();
  return { store, jobId, events, outcome };
}

function output(events: JobEvent[], stream: StreamType): string {
  const decoder = new TextDecoder();
  return events.flatMap((e) =>
    e.eventData.case === "outputBatch"
      ? e.eventData.value.outputs.filter((o) => o.streamType === stream).map((o) =>
        decoder.decode(o.output)
      )
      : []
  ).join("");
}

function types(events: JobEvent[]): EventType[] {
  return events.map((e) => e.eventType).filter((t) => t !== EventType.OUTPUT_BATCH);
}

Deno.test("a job's stdout and stderr arrive apart, and exit 0 completes it", async () => {
  const run = await runJob({ command: "sh", args: ["-c", "echo out; echo err >&2"] });
  assert.equal(run.outcome.kind, "completed");
  assert.equal(output(run.events, StreamType.STDOUT), "out\n");
  assert.equal(output(run.events, StreamType.STDERR), "err\n");
  assert.deepEqual(types(run.events), [EventType.PROCESS_START, EventType.PROCESS_END]);
  const end = run.events.at(-1)!;
  assert.equal(end.eventData.case === "processEnd" && end.eventData.value.exitCode, 0);
  const seqs = run.events.map((e) => e.sequence);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => Number(a - b)), "events are in sequence order");
});

Deno.test("a non-zero exit fails the job with that exit code", async () => {
  const run = await runJob({ command: "sh", args: ["-c", "exit 3"] });
  assert.equal(run.outcome.kind, "completed");
  if (run.outcome.kind !== "completed") return;
  assert.equal(run.outcome.result.success, false);
  assert.equal(run.outcome.result.exitCode, 3);
});

Deno.test("a command that is not found fails at once with 127 and PROCESS_ERROR", async () => {
  const run = await runJob({ command: "airunner-no-such-command" });
  assert.equal(run.outcome.kind, "completed");
  if (run.outcome.kind !== "completed") return;
  assert.equal(run.outcome.result.exitCode, 127);
  assert.match(run.outcome.result.errorMessage, /command not found: airunner-no-such-command/);
  assert.deepEqual(types(run.events), [EventType.PROCESS_ERROR]);
});

Deno.test("an empty command fails at once and is never redelivered", async () => {
  await using store = new MemoryJobStore();
  const { jobId, leased } = await leaseJob(store, { command: "  " });
  const outcome = await executeJob(
    leased,
    testDeps(storeWorkerApi(store)),
    new AbortController().signal,
  );
  assert.equal(outcome.kind, "completed");
  const stored = await store.getJob(jobId);
  assert.equal(stored.state, JobState.FAILED);
  assert.equal(stored.result?.exitCode, 126);
  assert.match(stored.result?.errorMessage ?? "", /no command/);
});

Deno.test("the job's environment is merged over the worker's, without the worker's token", async () => {
  const run = await runJob({
    command: "sh",
    args: [
      "-c",
      'echo "$FROM_WORKER $FROM_JOB $AIRUNNER_JOB_ID $AIRUNNER_ATTEMPT ${AIRUNNER_TOKEN:-none}"',
    ],
    environment: { FROM_JOB: "j", FROM_WORKER: "overridden" },
  });
  assert.equal(output(run.events, StreamType.STDOUT), `overridden j ${run.jobId} 1 none\n`);
});

Deno.test("the job runs in its working directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = await runJob({ command: "pwd", workingDirectory: dir });
    assert.equal(output(run.events, StreamType.STDOUT).trim(), await Deno.realPath(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("many lines arrive complete and in order", async () => {
  const run = await runJob({ command: "seq", args: ["1", "20000"] });
  const expected = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join("");
  assert.equal(output(run.events, StreamType.STDOUT), expected);
});

Deno.test("timeout_seconds stops the command and fails the job as timed out", async () => {
  const started = Date.now();
  const run = await runJob({ command: "sleep", args: ["30"], timeoutSeconds: 1 });
  assert.ok(Date.now() - started < 10_000, "stopped well before the command would end");
  assert.equal(run.outcome.kind, "completed");
  if (run.outcome.kind !== "completed") return;
  assert.equal(run.outcome.result.exitCode, TIMEOUT_EXIT_CODE);
  assert.match(run.outcome.result.errorMessage, /timed out after 1 s/);
  assert.ok(types(run.events).includes(EventType.PROCESS_ERROR));
});

Deno.test("a lost lease stops the command and does not complete the job", async () => {
  const started = Date.now();
  const run = await runJob({ command: "sleep", args: ["30"] }, {
    visibilitySeconds: 1,
    api: (store) => ({
      ...storeWorkerApi(store),
      extendLease: () => Promise.reject(new ConnectError("lease lost", Code.FailedPrecondition)),
    }),
  });
  assert.equal(run.outcome.kind, "lease_lost");
  assert.ok(Date.now() - started < 10_000);
  assert.ok(!types(run.events).includes(EventType.PROCESS_END), "no end was reported");
});

Deno.test("stopping the worker hands the running job back to the queue", async () => {
  await using store = new MemoryJobStore();
  const { jobId, leased } = await leaseJob(store, { command: "sleep", args: ["30"] });
  const stop = new AbortController();
  setTimeout(() => stop.abort(), 300);
  const outcome = await executeJob(leased, testDeps(storeWorkerApi(store)), stop.signal);
  assert.equal(outcome.kind, "handed_back");
  assert.equal((await store.getJob(jobId)).state, JobState.SCHEDULED);
  const [again] = await store.dequeue("default", {
    maxJobs: 1,
    visibilityTimeoutMs: 30_000,
    signal: AbortSignal.timeout(1000),
  });
  assert.equal(again?.job.jobId, jobId);
  assert.equal(again?.job.attempt, 2);
});

Deno.test("a timeout reports in order and leaves no process of the job running", async () => {
  // A sleep of a length nobody else uses marks the background child in `ps`.
  const marker = `sleep 30.${Math.floor(Math.random() * 1e6)}`;
  const run = await runJob({
    command: "sh",
    args: ["-c", `echo started; ${marker} & ${marker}`],
    timeoutSeconds: 1,
  });
  assert.deepEqual(types(run.events), [
    EventType.PROCESS_START,
    EventType.PROCESS_ERROR,
    EventType.PROCESS_END,
  ]);
  const batchIndex = run.events.findIndex((e) => e.eventType === EventType.OUTPUT_BATCH);
  const errorIndex = run.events.findIndex((e) => e.eventType === EventType.PROCESS_ERROR);
  assert.ok(
    batchIndex >= 0 && batchIndex < errorIndex,
    "output read before the timeout comes first",
  );
  const ps = await new Deno.Command("ps", { args: ["-eo", "args"], stdout: "piped" }).output();
  assert.ok(!new TextDecoder().decode(ps.stdout).includes(marker), "the background child is gone");
});

Deno.test("events the server refuses stop the command and fail the job with the reason", async () => {
  const run = await runJob({ command: "sleep", args: ["30"] }, {
    api: (store) => ({
      ...storeWorkerApi(store),
      publishEvents: () =>
        Promise.reject(new ConnectError("events: event too large", Code.ResourceExhausted)),
    }),
  });
  assert.equal(run.outcome.kind, "completed");
  if (run.outcome.kind !== "completed") return;
  assert.equal(run.outcome.result.success, false);
  assert.match(
    run.outcome.result.errorMessage,
    /refused the job's events: events: event too large/,
  );
});

Deno.test("a job's last events travel with its result: its end costs one call, not two", async () => {
  const published: EventType[][] = [];
  const carried: EventType[][] = [];
  const run = await runJob({ command: "sh", args: ["-c", "echo hi"] }, {
    api: (store) => {
      const api = storeWorkerApi(store);
      return {
        ...api,
        publishEvents: (token, events) => {
          published.push(events.map((e) => e.eventType));
          return api.publishEvents(token, events);
        },
        complete: (token, completion) => {
          carried.push(completion.lastEvents.map((e) => e.eventType));
          return api.complete(token, completion);
        },
      };
    },
  });
  assert.ok(run.outcome.kind === "completed" && run.outcome.result.success);
  assert.equal(carried.length, 1);
  assert.ok(carried[0]!.includes(EventType.PROCESS_END), `the result carried ${carried[0]}`);
  assert.ok(!published.flat().includes(EventType.PROCESS_END));
  assert.deepEqual(types(run.events), [EventType.PROCESS_START, EventType.PROCESS_END]);
  assert.equal(output(run.events, StreamType.STDOUT), "hi\n");
});

Deno.test("last events refused with the result: the result is recorded alone and says why", async () => {
  const completions: number[] = [];
  const run = await runJob({ command: "true" }, {
    api: (store) => {
      const api = storeWorkerApi(store);
      return {
        ...api,
        complete: (token, completion) => {
          completions.push(completion.lastEvents.length);
          return completion.lastEvents.length > 0
            ? Promise.reject(
              new LastEventsRefusedError(
                new ConnectError("events: event too large", Code.ResourceExhausted),
              ),
            )
            : api.complete(token, completion);
        },
      };
    },
  });
  assert.ok(run.outcome.kind === "completed");
  assert.equal(run.outcome.result.success, false);
  assert.match(
    run.outcome.result.errorMessage,
    /refused the job's events: events: event too large/,
  );
  assert.equal(completions.length, 2, "refused once with events, then recorded without");
  assert.ok(completions[0]! > 0);
  assert.equal(completions[1], 0);
  assert.deepEqual(types(run.events), [EventType.PROCESS_START], "the store has what it took");
});

Deno.test("last events refused in passing go again with the result, and none is lost", async () => {
  let refusals = 0;
  const run = await runJob({ command: "true" }, {
    api: (store) => {
      const api = storeWorkerApi(store);
      return {
        ...api,
        complete: (token, completion) =>
          refusals++ < 1
            ? Promise.reject(
              new LastEventsRefusedError(new ConnectError("restarting", Code.Unavailable)),
            )
            : api.complete(token, completion),
      };
    },
  });
  assert.ok(run.outcome.kind === "completed" && run.outcome.result.success);
  assert.equal(refusals, 2);
  assert.deepEqual(types(run.events), [EventType.PROCESS_START, EventType.PROCESS_END]);
});

Deno.test("a server out of disk space (resource_exhausted) delays the lease and the result, and the job runs on", async () => {
  const full = () =>
    new ConnectError("no space left for the job store in /data", Code.ResourceExhausted);
  let extensionsRefused = 0;
  let completionsRefused = 0;
  const run = await runJob({ command: "sleep", args: ["2.5"] }, {
    visibilitySeconds: 3,
    api: (store) => {
      const api = storeWorkerApi(store);
      return {
        ...api,
        extendLease: (token, queue, seconds) =>
          extensionsRefused++ < 2 ? Promise.reject(full()) : api.extendLease(token, queue, seconds),
        complete: (token, result) =>
          completionsRefused++ < 1 ? Promise.reject(full()) : api.complete(token, result),
      };
    },
  });
  assert.equal(run.outcome.kind, "completed");
  if (run.outcome.kind !== "completed") return;
  assert.equal(run.outcome.result.success, true);
  assert.ok(extensionsRefused >= 2, `the lease was refused ${extensionsRefused} times`);
  assert.equal(completionsRefused, 2, "the result was refused once, then recorded");
});

Deno.test("stopping while the server is unreachable gives up within the cleanup bound", async () => {
  await using store = new MemoryJobStore();
  const { leased } = await leaseJob(store, { command: "sleep", args: ["30"] });
  const down = () => Promise.reject(new ConnectError("unreachable", Code.Unavailable));
  const api = {
    claim: () => Promise.resolve([]),
    extendLease: down,
    publishEvents: down,
    complete: down,
  };
  const stop = new AbortController();
  setTimeout(() => stop.abort(), 200);
  const started = Date.now();
  const outcome = await executeJob(
    leased,
    testDeps(api, { killGraceMs: 500, stopCleanupMs: 500 }),
    stop.signal,
  );
  assert.equal(outcome.kind, "abandoned");
  assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
});

Deno.test("a job cancelled while it runs is stopped within seconds and ends CANCELLED", async () => {
  await using store = new MemoryJobStore();
  const marker = `sleep 60.${Math.floor(Math.random() * 1e6)}`;
  const { jobId, leased } = await leaseJob(store, { command: "sh", args: ["-c", marker] }, 6);
  setTimeout(() => void store.cancel(jobId, "changed my mind"), 300);
  const started = Date.now();
  const outcome = await executeJob(
    leased,
    testDeps(storeWorkerApi(store), { visibilityTimeoutSeconds: 6 }),
    new AbortController().signal,
  );
  assert.ok(Date.now() - started < 6_000, `stopped after ${Date.now() - started} ms`);
  assert.equal(outcome.kind, "completed");
  const job = await store.getJob(jobId);
  assert.equal(job.state, JobState.CANCELLED);
  assert.equal(job.cancelReason, "changed my mind");
  const ps = await new Deno.Command("ps", { args: ["-eo", "args"], stdout: "piped" }).output();
  assert.ok(!new TextDecoder().decode(ps.stdout).includes(marker), "the command is gone");
});

Deno.test("a pty job sees a terminal of the default size; a pipe job does not", async () => {
  const probe =
    "test -t 0 && echo in-tty; test -t 1 && echo out-tty; stty size 2>/dev/null; echo to-stderr >&2";
  const pty = await runJob({ command: "sh", args: ["-c", probe], processType: ProcessType.PTY });
  const shown = output(pty.events, StreamType.STDOUT).replaceAll("\r\n", "\n");
  assert.equal(shown, "in-tty\nout-tty\n40 120\nto-stderr\n", "one terminal stream");
  const resize = pty.events.find((e) => e.eventData.case === "terminalResize");
  assert.ok(resize?.eventData.case === "terminalResize");
  assert.equal(resize.eventData.value.cols, 120);
  assert.equal(resize.eventData.value.rows, 40);
  const sized = await runJob({
    command: "stty",
    args: ["size"],
    processType: ProcessType.PTY,
    environment: { COLUMNS: "100", LINES: "30" },
  });
  assert.equal(output(sized.events, StreamType.STDOUT).trim(), "30 100");
  const exit = await runJob({
    command: "sh",
    args: ["-c", "exit 7"],
    processType: ProcessType.PTY,
  });
  assert.equal(exit.outcome.kind === "completed" && exit.outcome.result.exitCode, 7);

  const pipe = await runJob({ command: "sh", args: ["-c", probe] });
  assert.equal(output(pipe.events, StreamType.STDOUT), "");
  assert.equal(output(pipe.events, StreamType.STDERR), "to-stderr\n");
  assert.equal(pipe.events.some((e) => e.eventData.case === "terminalResize"), false);
});

Deno.test("a job with a repository runs in its checkout, in its working_directory", async () => {
  const repo = await makeTestRepo();
  try {
    const onBranch = await runJob({
      command: "sh",
      args: ["-c", "cat ../../VERSION; pwd"],
      repository: repo.url,
      branch: "main",
      workingDirectory: "sub/dir",
    });
    const [version, cwd] = output(onBranch.events, StreamType.STDOUT).trim().split("\n");
    assert.equal(version, "two");
    assert.match(cwd!, /airunner-test-workspaces\/.*\/sub\/dir$/);
    assert.equal(await Deno.stat(cwd!).catch(() => undefined), undefined, "workspace removed");

    const atCommit = await runJob({
      command: "cat",
      args: ["VERSION"],
      repository: repo.url,
      commit: repo.firstCommit,
    });
    assert.equal(output(atCommit.events, StreamType.STDOUT), "one\n");

    const escaping = await runJob({
      command: "true",
      repository: repo.url,
      workingDirectory: "../..",
    });
    assert.equal(escaping.outcome.kind === "completed" && escaping.outcome.result.exitCode, 126);
    const failed = await runJob({ command: "true", repository: `${repo.url}-missing` });
    assert.ok(failed.outcome.kind === "completed");
    assert.match(failed.outcome.result.errorMessage, /git clone failed/);
    assert.equal(types(failed.events)[0], EventType.PROCESS_ERROR);
  } finally {
    await repo.remove();
  }
});

Deno.test("secret environment values reach the job and are masked in its stdout and stderr", async () => {
  const run = await runJob({
    command: "sh",
    args: [
      "-c",
      [
        'echo "token=$TOKEN"',
        // Part of a value is not the value: it shows.
        'printf "%s" "$TOKEN" | cut -c1-4',
        'test "$TOKEN" = s3cr3t-value && echo match',
        // Two writes, so two reads: the value split across them is masked all the same.
        'printf "s3cr"; sleep 0.03; printf "3t-value\\n"',
        'echo "err $TOKEN" >&2',
        'echo "$FROM_JOB"',
      ].join("; "),
    ],
    environment: { FROM_JOB: "plain" },
    secretEnvironment: { TOKEN: "s3cr3t-value" },
  });
  assert.equal(
    output(run.events, StreamType.STDOUT),
    "token=***\ns3cr\nmatch\n***\nplain\n",
  );
  assert.equal(output(run.events, StreamType.STDERR), "err ***\n");
  assert.ok(run.outcome.kind === "completed" && run.outcome.result.success);
});

Deno.test("a multi-line secret is masked whole and line by line, on pipes and on a pty", async () => {
  const key = "-----BEGIN KEY-----\nMIIabc\n-----END KEY-----";
  const script = 'printf "%s\\n" "$KEY"; echo "$KEY" | sed -n 2p; printf "%s" "$KEY" | wc -l';
  for (const processType of [ProcessType.PIPE, ProcessType.PTY]) {
    const run = await runJob({
      command: "sh",
      args: ["-c", script],
      processType,
      secretEnvironment: { KEY: key },
    });
    const shown = output(run.events, StreamType.STDOUT).replaceAll("\r\n", "\n");
    assert.equal(shown.replace(/^ +/gm, ""), "***\n***\n2\n", ProcessType[processType]);
  }
});

Deno.test("output held back as a possible secret is not lost when the job ends or pauses", async () => {
  const run = await runJob({
    command: "sh",
    args: ["-c", 'printf "s3c"; sleep 0.3; printf "|"; printf "s3c"'],
    secretEnvironment: { TOKEN: "s3cr3t-value" },
  });
  assert.equal(output(run.events, StreamType.STDOUT), "s3c|s3c");
});

Deno.test("a message about a job that could not start has the job's secrets masked", async () => {
  const run = await runJob({
    command: "true",
    repository: "/nonexistent/airunner-repo-s3cr3t-value",
    secretEnvironment: { TOKEN: "s3cr3t-value" },
  });
  assert.ok(run.outcome.kind === "completed");
  assert.match(run.outcome.result.errorMessage, /airunner-repo-\*\*\*/);
  assert.ok(!run.outcome.result.errorMessage.includes("s3cr3t-value"));
  const errors = run.events.flatMap((e) =>
    e.eventData.case === "processError" ? [e.eventData.value.errorMessage] : []
  );
  assert.equal(errors.length, 1);
  assert.ok(!errors[0]!.includes("s3cr3t-value"), errors[0]);
});
