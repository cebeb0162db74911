/**
 * Secret environment on the command line: `--secret-env NAME=VALUE` and
 * `--secret-env NAME`, `secret_env` in job files and batch lines (merged key
 * by key like `environment`, flags win), and what `get` / `list` show.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { JobSchema, JobState } from "../../gen/job/v1/job_pb.ts";
import { batchDefaults, parseBatchLines } from "../../src/cli/batch_submit.ts";
import { parseJobFile } from "../../src/cli/job_file.ts";
import { describeJob, jobDetails } from "../../src/cli/job_format.ts";
import { parseSecretEnvEntries, UsageError } from "../../src/cli/parse.ts";
import { parseSubmitConfig } from "../../src/cli/submit.ts";
import { submitFlags } from "../support/submit_flags.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("--secret-env takes NAME=VALUE, or NAME alone read from the submitter's environment", () => {
  assert.deepEqual(
    parseSecretEnvEntries(["A=x=y", "B", "A=2"], "--secret-env", env({ B: "from-env" })),
    { A: "2", B: "from-env" },
  );
  const refused = (entries: string[], pattern: RegExp) =>
    assert.throws(
      () => parseSecretEnvEntries(entries, "--secret-env", env({ EMPTY: "" })),
      (e: unknown) => e instanceof UsageError && pattern.test(e.message),
    );
  refused(["MISSING"], /^--secret-env: MISSING is not set in your environment/);
  refused(["EMPTY"], /^--secret-env: EMPTY is empty in your environment; a secret needs/);
  refused(["T="], /^--secret-env: T has an empty value; a secret needs at least 1 byte/);
  refused(["=v"], /is not KEY=VALUE/);
  refused([""], /give NAME=VALUE/);
});

const flags = submitFlags;

Deno.test("a job file's secret_env and --secret-env merge key by key; the flag wins", () => {
  const file = parseJobFile(
    [
      "command: make",
      "environment: { CI: 'true' }",
      "secret_env:",
      "  NPM_TOKEN: from-file",
      "  SSH_KEY: |",
      "    line one",
      "    line two",
    ].join("\n"),
    "yaml",
    "job.yaml",
  );
  assert.deepEqual(file.secretEnvironment, {
    NPM_TOKEN: "from-file",
    SSH_KEY: "line one\nline two\n",
  });
  const config = parseSubmitConfig(
    undefined,
    flags({ secretEnv: ["NPM_TOKEN=from-flag", "EXTRA=1"] }),
    undefined,
    file,
  );
  assert.deepEqual(config.params.secretEnvironment, {
    NPM_TOKEN: "from-flag",
    SSH_KEY: "line one\nline two\n",
    EXTRA: "1",
  });
  assert.deepEqual(config.params.environment, { CI: "true" });
  assert.throws(
    () => parseJobFile('{"command": "x", "secret_env": ["A"]}', "json", "job.json"),
    /--config job.json: secret_env must be a mapping of names to values/,
  );
});

Deno.test("batch lines take secret_env; --secret-env is a default each line's keys override", () => {
  const defaults = batchDefaults(
    undefined,
    flags({ secretEnv: ["TOKEN=default", "SHARED"] }),
    {},
    "ada",
    env({ SHARED: "from-env" }),
  );
  const jobs = parseBatchLines(
    [
      '{"command": "a"}',
      '{"command": "b", "secret_env": {"TOKEN": "line-2"}}',
    ].join("\n"),
    defaults,
  );
  assert.deepEqual(jobs.map((j) => j.request.jobParams?.secretEnvironment), [
    { TOKEN: "default", SHARED: "from-env" },
    { TOKEN: "line-2", SHARED: "from-env" },
  ]);
  // The server's rules, named as the line's key.
  assert.throws(
    () =>
      parseBatchLines(
        '{"command": "a", "environment": {"TOKEN": "x"}, "secret_env": {"TOKEN": "y"}}',
        batchDefaults(undefined, flags(), {}, "ada"),
      ),
    /^UsageError: line 1: secret_env: key "TOKEN" is also in job_params.environment/,
  );
  assert.throws(
    () =>
      parseBatchLines(
        '{"command": "a", "secret_env": {"T": ""}}',
        batchDefaults(undefined, flags(), {}, "ada"),
      ),
    /line 1: secret_env\[T\]: is empty/,
  );
});

Deno.test("get and list show secret names with *** only, --show-env or not", () => {
  const job = create(JobSchema, {
    jobId: "0190b2a4-0000-7000-8000-000000000000",
    queue: "default",
    state: JobState.SCHEDULED,
    // What an older or a foreign server might send: the CLI masks it anyway.
    jobParams: { command: "x", environment: { CI: "true" }, secretEnvironment: { TOKEN: "v" } },
  });
  for (const showEnv of [false, true]) {
    const details = jobDetails(job, showEnv);
    assert.deepEqual(details.secretEnvironment, { TOKEN: "***" });
    assert.deepEqual(details.environment, { CI: showEnv ? "true" : "***" });
    const text = describeJob(job, 0, showEnv);
    assert.match(text, /^secret: +TOKEN=\*\*\*$/m);
    assert.doesNotMatch(text, /TOKEN=v/);
  }
});
