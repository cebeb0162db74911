import assert from "node:assert/strict";
import { ProcessType } from "../../gen/job/v1/job_pb.ts";
import { jobParamsOf, mergeJobSpecs } from "../../src/cli/job_spec.ts";
import { UsageError } from "../../src/cli/parse.ts";

Deno.test("later specs win; environment, secrets and metadata merge key by key", () => {
  const spec = mergeJobSpecs(
    { owner: "ada", environment: { A: "1", B: "1" }, metadata: { team: "x" } },
    { command: "make", owner: undefined, environment: { B: "2" }, branch: "main" },
    { environment: { C: "3" }, secretEnvironment: { TOKEN: "t" }, owner: "bob" },
  );
  assert.deepEqual(spec, {
    owner: "bob",
    environment: { A: "1", B: "2", C: "3" },
    metadata: { team: "x" },
    command: "make",
    branch: "main",
    secretEnvironment: { TOKEN: "t" },
  });
});

Deno.test("an undefined setting is not given and leaves the earlier one", () => {
  assert.deepEqual(mergeJobSpecs({ workingDirectory: "sub" }, { workingDirectory: undefined }), {
    workingDirectory: "sub",
  });
});

Deno.test("jobParamsOf fills what the spec leaves unset and checks the timeout", () => {
  const params = jobParamsOf(
    { command: "make", processType: "pty", timeoutSeconds: 90 },
    "--timeout",
  );
  assert.equal(params.command, "make");
  assert.deepEqual(params.args, []);
  assert.deepEqual(params.environment, {});
  assert.equal(params.owner, "");
  assert.equal(params.repository, "");
  assert.equal(params.timeoutSeconds, 90);
  assert.equal(params.processType, ProcessType.PTY);
  assert.equal(jobParamsOf({ command: "x" }, "t").processType, ProcessType.PIPE);
  assert.throws(
    () => jobParamsOf({ command: "x", timeoutSeconds: 400 * 86_400 }, "line 3: timeout"),
    (e: unknown) => e instanceof UsageError && e.message.startsWith("line 3: timeout"),
  );
});
