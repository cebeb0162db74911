/**
 * A job's retry settings from each place the CLI takes them (src/cli/retry_flags.ts):
 * submit's flags, job files, batch lines (flags as defaults) and the
 * server's --default-retries; errors named as the user wrote them.
 */
import assert from "node:assert/strict";
import {
  parseRetries,
  parseRetryDelay,
  parseRetryOn,
  retryPolicyOf,
} from "../../src/cli/retry_flags.ts";
import { defaultRetryPolicyOf } from "../../src/cli/retry_default_options.ts";
import { parseJobFile } from "../../src/cli/job_file.ts";
import { batchDefaults, parseBatchLines } from "../../src/cli/batch_submit.ts";
import { parseSubmitConfig } from "../../src/cli/submit.ts";
import { submitFlags } from "../support/submit_flags.ts";
import { UsageError } from "../../src/cli/parse.ts";

const flags = submitFlags;

Deno.test("--retry-on takes codes and ranges within 1..255", () => {
  assert.deepEqual(
    parseRetryOn("1,2, 75-78", "--retry-on").map((r) => [r.first, r.last]),
    [[1, 1], [2, 2], [75, 78]],
  );
  assert.deepEqual(parseRetryOn([3, "75-78"], "retryOn").map((r) => [r.first, r.last]), [
    [3, 3],
    [75, 78],
  ]);
  assert.throws(() => parseRetryOn("1,x", "--retry-on"), /--retry-on: "x" is not an exit code/);
  assert.throws(() => parseRetryOn("5-", "--retry-on"), UsageError);
  assert.throws(() => parseRetryOn("0-3", "--retry-on"), /--retry-on: is 0, outside 1..255/);
  assert.throws(() => parseRetryOn("9-8", "--retry-on"), /--retry-on: is 8, outside 9..255/);
  assert.throws(
    () => parseRetryOn(Array.from({ length: 33 }, (_, i) => i + 1), "--retry-on"),
    /--retry-on: has 33 ranges, more than the limit of 32/,
  );
});

Deno.test("--retries is a whole number within 0..100", () => {
  assert.equal(parseRetries("3", "--retries"), 3);
  assert.equal(parseRetries(0, "retries"), 0);
  assert.throws(() => parseRetries("101", "--retries"), /--retries: is 101, outside 0..100/);
  assert.throws(() => parseRetries("-1", "--retries"), /--retries: "-1" is not a whole number/);
  assert.throws(() => parseRetries("2.5", "--retries"), /is not a whole number/);
});

Deno.test("--retry-delay takes a first wait, or first..longest, within 100 ms..24 h", () => {
  assert.deepEqual(parseRetryDelay("5s..10m", "--retry-delay"), { minMs: 5_000, maxMs: 600_000 });
  assert.deepEqual(parseRetryDelay("250ms", "--retry-delay"), { minMs: 250, maxMs: 0 });
  assert.throws(() => parseRetryDelay("..5s", "--retry-delay"), /--retry-delay: "..5s" is not a/);
  assert.throws(() => parseRetryDelay("1s..2s..3s", "--retry-delay"), UsageError);
  assert.throws(
    () => parseRetryDelay("50ms", "--retry-delay"),
    /--retry-delay: must be 0 \(the default\) or between 100 and 86400000 ms, got 50/,
  );
  assert.throws(
    () => parseRetryDelay("10m..5s", "--retry-delay"),
    /--retry-delay: must be 0 \(the default\) or between 600000 and 86400000 ms, got 5000/,
  );
  assert.throws(() => parseRetryDelay("25h", "--retry-delay"), /between 100 and 86400000/);
});

Deno.test("no retry setting: no policy (the server's default applies)", () => {
  assert.equal(retryPolicyOf({}), undefined);
  assert.equal(parseSubmitConfig(undefined, flags(), ["true"]).params.retry, undefined);
});

Deno.test("submit's flags make the job's policy; a job file's keys give way to them", () => {
  const file = parseJobFile(
    'command: make\nretries: 5\nretryOn: "1,75-78"\nretryDelay: 2s..1m\nretryOnTimeout: false\n',
    "yaml",
    "job.yaml",
  );
  const fromFile = parseSubmitConfig(undefined, flags(), undefined, file).params.retry!;
  assert.equal(fromFile.maxRetries, 5);
  assert.deepEqual(fromFile.retryOnExitCodes.map((r) => [r.first, r.last]), [[1, 1], [75, 78]]);
  assert.equal(fromFile.minDelayMs, 2_000n);
  assert.equal(fromFile.maxDelayMs, 60_000n);
  assert.equal(fromFile.noRetryOnTimeout, true);

  const flagged = parseSubmitConfig(
    undefined,
    flags({ retries: "2", retryDelay: "1s" }),
    undefined,
    file,
  ).params.retry!;
  assert.equal(flagged.maxRetries, 2);
  assert.equal(flagged.minDelayMs, 1_000n);
  assert.equal(flagged.maxDelayMs, 0n, "one duration is the first wait; the longest is default");
  assert.equal(flagged.retryOnExitCodes.length, 2, "the file's retryOn stays");

  const noTimeout = parseSubmitConfig(
    undefined,
    flags({ retries: "1", retryOnTimeout: false }),
    ["true"],
  ).params.retry!;
  assert.equal(noTimeout.noRetryOnTimeout, true);
  assert.equal(noTimeout.maxRetries, 1);
  // A setting without a count would make a policy that retries nothing and hides the server's default.
  assert.throws(
    () => parseSubmitConfig(undefined, flags({ retryOnTimeout: false }), ["true"]),
    /--no-retry-on-timeout \(retryOnTimeout\) needs --retries \(retries\)/,
  );
  assert.throws(
    () => parseSubmitConfig(undefined, flags({ retryDelay: "10s" }), ["true"]),
    /--retry-delay \(retryDelay\) needs --retries/,
  );
  assert.throws(
    () =>
      parseBatchLines(
        '{"command": "a", "retryOn": "75"}',
        batchDefaults(undefined, flags(), {}, "ada"),
      ),
    /line 1: --retry-on \(retryOn\) needs --retries/,
  );
  assert.throws(
    () => parseSubmitConfig(undefined, flags({ retries: "500" }), ["true"]),
    /--retries: is 500, outside 0..100/,
  );
});

Deno.test("job file retry keys are checked, named by file and key", () => {
  const bad = (text: string) => () => parseJobFile(`command: x\n${text}\n`, "yaml", "j.yaml");
  assert.throws(bad("retries: many"), /--config j.yaml: retries: "many" is not a whole number/);
  assert.throws(bad("retries: [1]"), /--config j.yaml: retries must be a whole number/);
  assert.throws(bad("retryOn: 300"), /--config j.yaml: retryOn: is 300, outside 1..255/);
  assert.throws(bad("retryOn: {a: 1}"), /--config j.yaml: retryOn must be exit codes/);
  assert.throws(bad("retryDelay: 1ms"), /--config j.yaml: retryDelay: must be 0/);
  assert.throws(bad("retryOnTimeout: maybe"), /retryOnTimeout must be true or false/);
  assert.throws(bad("retry: 3"), /key "retry" is unknown \(known keys: .*retries/);
});

Deno.test("batch lines take the retry keys; the flags are every line's defaults", () => {
  const defaults = batchDefaults(undefined, flags({ retries: "1", retryOn: "3" }), {}, "ada");
  const jobs = parseBatchLines(
    [
      '{"command": "a"}',
      '{"command": "b", "retries": 4, "retryDelay": "1s..8s"}',
      '{"command": "c", "retryOn": [1, "75-78"], "retryOnTimeout": false}',
    ].join("\n"),
    defaults,
  );
  const policies = jobs.map((j) => j.request.jobParams!.retry!);
  assert.deepEqual(policies.map((p) => p.maxRetries), [1, 4, 1]);
  assert.deepEqual(policies.map((p) => p.retryOnExitCodes.length), [1, 1, 2]);
  assert.deepEqual(policies.map((p) => p.maxDelayMs), [0n, 8_000n, 0n]);
  assert.deepEqual(policies.map((p) => p.noRetryOnTimeout), [false, false, true]);
  assert.throws(
    () => parseBatchLines('{"command": "a", "retries": 101}', defaults),
    /^UsageError: line 1: retries: is 101, outside 0..100/,
  );
});

Deno.test("--default-retries and --default-retry-delay make the server's default policy", () => {
  assert.equal(defaultRetryPolicyOf({}), undefined);
  const policy = defaultRetryPolicyOf({ defaultRetries: "2", defaultRetryDelay: "5s..10m" })!;
  assert.equal(policy.maxRetries, 2);
  assert.equal(policy.minDelayMs, 5_000n);
  assert.equal(policy.maxDelayMs, 600_000n);
  assert.throws(
    () => defaultRetryPolicyOf({ defaultRetries: "1000" }),
    /--default-retries: is 1000, outside 0..100/,
  );
  assert.throws(
    () => defaultRetryPolicyOf({ defaultRetryDelay: "1ms" }),
    /--default-retry-delay: must be 0/,
  );
  assert.throws(
    () => defaultRetryPolicyOf({ defaultRetryDelay: "5s" }),
    /--default-retry-delay needs --default-retries/,
  );
});
