import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  DequeueJobRequestSchema,
  EventType,
  JobParamsSchema,
  JobState,
  ListJobsRequestSchema,
  StreamJobEventsRequestSchema,
  UpdateJobRequestSchema,
  WorkerSessionRequestSchema,
} from "../../gen/job/v1/job_pb.ts";
import { branchNameProblem } from "../../src/protocol/git_refs.ts";
import {
  InvalidArgumentError,
  validateDequeueRequest,
  validateEnqueueJobsRequest,
  validateJobParams,
  validateListRequest,
  validateQueueName,
  validateStreamRequest,
  validateUpdateRequest,
} from "../../src/protocol/request_validation.ts";
import {
  validateSessionCredits,
  validateSessionOperationCount,
} from "../../src/protocol/session_validation.ts";
import { MAX_SESSION_CREDITS, MAX_SESSION_OPERATIONS } from "../../src/protocol/session.ts";

function fails(fn: () => unknown, field: string, pattern: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InvalidArgumentError);
    assert.equal(e.field, field);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("DequeueJob defaults: max_jobs 1 and visibility 300 s when <= 0", () => {
  assert.deepEqual(validateDequeueRequest(create(DequeueJobRequestSchema, { queue: "q" })), {
    queue: "q",
    maxJobs: 1,
    visibilityTimeoutMs: 300_000,
    workerName: "",
  });
  fails(
    () =>
      validateDequeueRequest(
        create(DequeueJobRequestSchema, { queue: "q", visibilityTimeoutSeconds: 43_201 }),
      ),
    "visibility_timeout_seconds",
    /outside 1..43200/,
  );
});

Deno.test("ListJobs defaults: page 1, page_size 50", () => {
  assert.deepEqual(validateListRequest(create(ListJobsRequestSchema, {})), {
    page: 1,
    pageSize: 50,
  });
  assert.deepEqual(
    validateListRequest(
      create(ListJobsRequestSchema, { queue: "q", state: JobState.FAILED, page: 3, pageSize: 7 }),
    ),
    { page: 3, pageSize: 7, queue: "q", state: JobState.FAILED },
  );
  fails(
    () => validateListRequest(create(ListJobsRequestSchema, { state: 99 as JobState })),
    "state",
    /unknown value 99/,
  );
});

Deno.test("UpdateJob takes visibility 0 (hand back) and refuses negative values", () => {
  const ok = validateUpdateRequest(
    create(UpdateJobRequestSchema, { queue: "q", taskToken: "t", visibilityTimeoutSeconds: 0 }),
  );
  assert.equal(ok.visibilityTimeoutMs, 0);
  fails(
    () =>
      validateUpdateRequest(
        create(UpdateJobRequestSchema, {
          queue: "q",
          taskToken: "t",
          visibilityTimeoutSeconds: -1,
        }),
      ),
    "visibility_timeout_seconds",
    /outside 0..43200/,
  );
  fails(
    () => validateUpdateRequest(create(UpdateJobRequestSchema, { queue: "q" })),
    "task_token",
    /required/,
  );
});

Deno.test("job parameters are bounded and named by field", () => {
  const base = { command: "x" };
  const check = (extra: object) => () =>
    validateJobParams(create(JobParamsSchema, { ...base, ...extra }));
  fails(check({ command: "x".repeat(4097) }), "job_params.command", /limit of 4096/);
  fails(check({ args: ["a\0b"] }), "job_params.args[0]", /NUL/);
  fails(
    check({
      environment: Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`K${i}`, "v"])),
    }),
    "job_params.environment",
    /257 entries, more than the limit of 256/,
  );
  fails(check({ metadata: { k: "v".repeat(32 * 1024 + 1) } }), "job_params.metadata[k]", /limit/);
  fails(check({ workingDirectory: "d".repeat(2049) }), "job_params.working_directory", /limit/);
  fails(check({ processType: 7 }), "job_params.process_type", /unknown value 7/);
  fails(check({ timeoutSeconds: 7 * 24 * 3600 + 1 }), "job_params.timeout_seconds", /outside/);
  assert.equal(validateJobParams(create(JobParamsSchema, base)).command, "x");
});

Deno.test("secret environment: env names, 1 byte or more, bounded, not also in environment; no value in a message", () => {
  const check = (extra: object) => () =>
    validateJobParams(create(JobParamsSchema, { command: "x", ...extra }));
  const field = "job_params.secret_environment";
  fails(check({ secretEnvironment: { "A=B": "s3cr3t" } }), field, /key "A=B" contains '='/);
  fails(check({ secretEnvironment: { "A\0": "s3cr3t" } }), `${field} key`, /NUL/);
  fails(check({ secretEnvironment: { "": "s3cr3t" } }), field, /empty key/);
  fails(
    check({ secretEnvironment: { T: "" } }),
    `${field}[T]`,
    /empty; a secret needs at least 1 byte/,
  );
  fails(check({ secretEnvironment: { T: "a\0b" } }), `${field}[T]`, /NUL/);
  fails(
    check({ environment: { TOKEN: "plain" }, secretEnvironment: { TOKEN: "s3cr3t" } }),
    field,
    /key "TOKEN" is also in job_params.environment/,
  );
  fails(
    check({
      secretEnvironment: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`S${i}`, "v"])),
    }),
    field,
    /65 entries, more than the limit of 64/,
  );
  // The limit is in bytes: 8,193 two-byte characters are 16,386 bytes.
  fails(
    check({ secretEnvironment: { BIG: "é".repeat(8193) } }),
    `${field}[BIG]`,
    /16386 bytes, more than the limit of 16384/,
  );
  fails(
    check({
      secretEnvironment: Object.fromEntries(
        Array.from({ length: 5 }, (_, i) => [`S${i}`, "v".repeat(16 * 1024)]),
      ),
    }),
    field,
    /81920 bytes together, more than the limit of 65536/,
  );
  for (const secret of ["s3cr3t-value", "v".repeat(20)]) {
    assert.throws(
      check({ environment: { T: "x" }, secretEnvironment: { T: secret } }),
      (e: unknown) => e instanceof Error && !e.message.includes(secret),
    );
  }
  const ok = validateJobParams(
    create(JobParamsSchema, {
      command: "x",
      environment: { CI: "true" },
      secretEnvironment: { TOKEN: "s3cr3t", KEY: "line 1\nline 2" },
    }),
  );
  assert.deepEqual(ok.secretEnvironment, { TOKEN: "s3cr3t", KEY: "line 1\nline 2" });
});

Deno.test("queue names: letters, digits, - and _, at most 64", () => {
  assert.equal(validateQueueName("builds_2-x"), "builds_2-x");
  fails(() => validateQueueName("a/b"), "queue", /only letters/);
  fails(() => validateQueueName("q".repeat(65)), "queue", /limit of 64/);
});

Deno.test("StreamJobEvents bounds and filter are checked", () => {
  const jobId = "01890a5d-ac96-774b-bcce-b302099a8057";
  const parsed = validateStreamRequest(
    create(StreamJobEventsRequestSchema, {
      jobId,
      fromSequence: 5n,
      fromTimestamp: 1000n,
      eventFilter: [EventType.PROCESS_END],
    }),
  );
  assert.equal(parsed.fromSequence, 5n);
  assert.equal(parsed.fromTimestampMs, 1000);
  assert.deepEqual([...parsed.eventTypes], [EventType.PROCESS_END]);
  fails(
    () => validateStreamRequest(create(StreamJobEventsRequestSchema, { jobId, fromSequence: -1n })),
    "from_sequence",
    /negative/,
  );
  fails(
    () =>
      validateStreamRequest(
        create(StreamJobEventsRequestSchema, { jobId, eventFilter: [42 as EventType] }),
      ),
    "event_filter[0]",
    /unknown value 42/,
  );
});

Deno.test("a commit, branch or repository that git would read as an option is refused, naming the field", () => {
  const check = (extra: object) => () =>
    validateJobParams(create(JobParamsSchema, { command: "x", repository: "file:///r", ...extra }));
  const hostile = "--upload-pack=touch pwned; false";
  fails(
    check({ commit: hostile }),
    "job_params.commit",
    /^job_params\.commit: must be a hex object id \(4 to 64 hex digits\)$/,
  );
  fails(check({ branch: hostile }), "job_params.branch", /not a valid git branch name: .*'-'/);
  fails(check({ repository: hostile }), "job_params.repository", /must not begin with '-'/);
  fails(check({ repository: "file:///r\nx" }), "job_params.repository", /control characters/);
  fails(check({ commit: "abc" }), "job_params.commit", /hex object id/);
  fails(check({ commit: "a".repeat(65) }), "job_params.commit", /hex object id/);
  fails(check({ commit: "v1.2.0" }), "job_params.commit", /hex object id/);
  fails(check({ commit: "HEAD~1" }), "job_params.commit", /hex object id/);
  // The batch path checks the same, naming the item, before anything is stored.
  assert.throws(
    () =>
      validateEnqueueJobsRequest({
        $typeName: "job.v1.EnqueueJobsRequest",
        jobs: [
          {
            $typeName: "job.v1.EnqueueJobRequest",
            requestId: "",
            queue: "default",
            jobParams: create(JobParamsSchema, { command: "x" }),
          },
          {
            $typeName: "job.v1.EnqueueJobRequest",
            requestId: "",
            queue: "default",
            jobParams: create(JobParamsSchema, { command: "x", commit: hostile }),
          },
        ],
      }),
    /^InvalidArgumentError: jobs\[1\]\.job_params\.commit: must be a hex object id/,
  );
  for (const commit of ["", "abcd", "1A2B3C4D", "0".repeat(40), "f".repeat(64)]) {
    assert.equal(
      validateJobParams(create(JobParamsSchema, { command: "x", commit })).commit,
      commit,
    );
  }
  for (
    const branch of ["", "main", "feature/login", "release-1.2", "v1.2.0", "üñî", "a@b", "x.y/z"]
  ) {
    assert.equal(
      validateJobParams(create(JobParamsSchema, { command: "x", branch })).branch,
      branch,
    );
  }
});

/** Names that probe every rule of git-check-ref-format(1), and a few that pass. */
const BRANCH_NAMES = [
  "main",
  "feature/login",
  "v1.2.0",
  "üñî",
  "a@b",
  "x.y/z",
  "a-b_c",
  "HEAD",
  "a.lock.b",
  "-x",
  "--upload-pack=x",
  "@",
  "a@{1}",
  "a..b",
  "a b",
  "a~1",
  "a^",
  "a:b",
  "a?",
  "a*",
  "a[b",
  "a\\b",
  "a\tb",
  "a\x7fb",
  "/a",
  "a/",
  "a//b",
  "a.",
  ".a",
  "a/.b",
  "a.lock",
  "a/b.lock/c",
  "a/./b",
  "a/../b",
  "-",
  "x/-y",
];

Deno.test("branch names: airunner's rules give what git check-ref-format --branch gives", async () => {
  const disagreements: string[] = [];
  for (const name of BRANCH_NAMES) {
    const { success } = await new Deno.Command("git", {
      args: ["check-ref-format", "--branch", name],
      stdout: "null",
      stderr: "null",
      env: { GIT_CONFIG_NOSYSTEM: "1", HOME: "/nonexistent" },
    }).output();
    if ((branchNameProblem(name) === undefined) !== success) disagreements.push(name);
  }
  assert.deepEqual(disagreements, []);
});

Deno.test("session credits: none below 0, and no more held than MAX_SESSION_CREDITS", () => {
  validateSessionCredits(0, 0);
  validateSessionCredits(MAX_SESSION_CREDITS - 10, 10);
  fails(() => validateSessionCredits(-1, 0), "credits", /is -1, below 0/);
  fails(
    () => validateSessionCredits(11, MAX_SESSION_CREDITS - 10),
    "credits",
    new RegExp(`hold ${MAX_SESSION_CREDITS + 1} unsent jobs`),
  );
});

Deno.test("a session message carries at most MAX_SESSION_OPERATIONS operations", () => {
  const of = (events: number, leaseUpdates: number, completions: number) =>
    create(WorkerSessionRequestSchema, {
      events: Array.from({ length: events }, () => ({})),
      leaseUpdates: Array.from({ length: leaseUpdates }, () => ({})),
      completions: Array.from({ length: completions }, () => ({})),
    });
  validateSessionOperationCount(of(MAX_SESSION_OPERATIONS - 2, 1, 1));
  fails(
    () => validateSessionOperationCount(of(MAX_SESSION_OPERATIONS - 1, 1, 1)),
    "events, lease_updates and completions",
    new RegExp(`together carry ${MAX_SESSION_OPERATIONS + 1} operations`),
  );
});

Deno.test("a retry policy's numbers are checked against their documented ranges", () => {
  const check = (retry: object) => () =>
    validateJobParams(create(JobParamsSchema, { command: "x", retry }));
  check({ maxRetries: 100, retryOnExitCodes: [{ first: 1, last: 255 }], minDelayMs: 100n })();
  check({ minDelayMs: 0n, maxDelayMs: 0n })();
  fails(check({ maxRetries: 101 }), "job_params.retry.max_retries", /is 101, outside 0..100/);
  fails(check({ maxRetries: -1 }), "job_params.retry.max_retries", /outside 0..100/);
  fails(
    check({ retryOnExitCodes: [{ first: 0, last: 3 }] }),
    "job_params.retry.retry_on_exit_codes[0].first",
    /is 0, outside 1..255/,
  );
  fails(
    check({ retryOnExitCodes: [{ first: 1, last: 2 }, { first: 9, last: 8 }] }),
    "job_params.retry.retry_on_exit_codes[1].last",
    /is 8, outside 9..255/,
  );
  fails(
    check({ retryOnExitCodes: Array.from({ length: 33 }, () => ({ first: 1, last: 1 })) }),
    "job_params.retry.retry_on_exit_codes",
    /33 ranges, more than the limit of 32/,
  );
  fails(check({ minDelayMs: 99n }), "job_params.retry.min_delay_ms", /between 100 and 86400000 ms/);
  fails(
    check({ minDelayMs: 5_000n, maxDelayMs: 1_000n }),
    "job_params.retry.max_delay_ms",
    /between 5000 and 86400000 ms, got 1000/,
  );
  fails(check({ maxDelayMs: 86_400_001n }), "job_params.retry.max_delay_ms", /86400000/);
  // With the default first wait (1 s), the longest wait is no shorter than that.
  fails(
    check({ maxRetries: 3, maxDelayMs: 200n }),
    "job_params.retry.max_delay_ms",
    /between 1000 and 86400000 ms, got 200/,
  );
});

Deno.test("rerun_of is RerunJob's to set: an enqueue naming it is refused", () => {
  fails(
    () => validateJobParams(create(JobParamsSchema, { command: "x", rerunOf: "job-1" })),
    "job_params.rerun_of",
    /set by RerunJob only/,
  );
});
