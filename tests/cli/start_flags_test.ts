/**
 * A job's start time and priority from each place the CLI takes them
 * (src/cli/start_flags.ts): submit's flags, job files, batch lines (flags
 * as defaults); errors named as the user wrote them; and the server's
 * checks of the same fields (request_validation.ts).
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { JobParamsSchema } from "../../gen/job/v1/job_pb.ts";
import { parsePriority, parseRunAt, parseStartDelay } from "../../src/cli/start_flags.ts";
import { parseJobFile } from "../../src/cli/job_file.ts";
import { batchDefaults, parseBatchLines } from "../../src/cli/batch_submit.ts";
import { parseSubmitConfig } from "../../src/cli/submit.ts";
import { InvalidArgumentError, validateJobParams } from "../../src/protocol/request_validation.ts";
import { startNotBeforeMs } from "../../src/store/lifecycle.ts";
import { checkRunAtNotPast } from "../../src/protocol/timing_validation.ts";
import { submitFlags as flags } from "../support/submit_flags.ts";

/** A time 30 days from now (what a real submit is held against), in RFC 3339. */
const SOON_MS = Math.floor((Date.now() + 30 * 86_400_000) / 1000) * 1000;
const SOON = new Date(SOON_MS).toISOString();

Deno.test("--delay takes a duration up to 366 days", () => {
  assert.deepEqual(parseStartDelay("10m", "--delay"), { delayMs: 600_000 });
  assert.deepEqual(parseStartDelay("1h30m", "--delay"), { delayMs: 5_400_000 });
  assert.throws(
    () => parseStartDelay("367d", "--delay"),
    /--delay: "367d" is longer than the limit of 366 days/,
  );
  assert.throws(() => parseStartDelay("soon", "--delay"), /--delay: "soon" is not a duration/);
});

Deno.test("--at takes RFC 3339 with a zone, and refuses a local time with a hint", () => {
  assert.deepEqual(parseRunAt("2026-12-24T09:00:00Z", "--at"), {
    runAtMs: Date.UTC(2026, 11, 24, 9),
  });
  assert.deepEqual(parseRunAt("2026-12-24T10:00:00+01:00", "--at"), {
    runAtMs: Date.UTC(2026, 11, 24, 9),
  });
  assert.deepEqual(parseRunAt("2026-12-24 09:00:00.250Z", "--at"), {
    runAtMs: Date.UTC(2026, 11, 24, 9, 0, 0, 250),
  });
  assert.throws(
    () => parseRunAt("2026-12-24T09:00:00", "--at"),
    /--at: "2026-12-24T09:00:00" has no time zone; add Z for UTC or an offset, as in 2026-12-24T09:00:00Z or 2026-12-24T09:00:00\+01:00/,
  );
  assert.throws(() => parseRunAt("2026-12-24", "--at"), /has no time zone; .*2026-12-24T09:00:00Z/);
  assert.throws(() => parseRunAt("tomorrow", "--at"), /is not an RFC 3339 time/);
  assert.throws(() => parseRunAt("2026-13-45T09:00:00Z", "--at"), /is not a valid time/);
  assert.throws(
    () => parseRunAt("2026-02-30T09:00:00Z", "--at"),
    /is not a valid time \(no such day or hour\)/,
  );
  assert.throws(() => parseRunAt("2026-12-24T24:00:00Z", "--at"), /is not a valid time/);
  assert.deepEqual(parseRunAt("2028-02-29T09:00:00Z", "--at"), {
    runAtMs: Date.UTC(2028, 1, 29, 9),
  });
});

Deno.test("--priority takes a whole number in -100..100", () => {
  assert.equal(parsePriority("5", "--priority"), 5);
  assert.equal(parsePriority("-100", "--priority"), -100);
  assert.equal(parsePriority(100, "priority"), 100);
  assert.throws(() => parsePriority("101", "--priority"), /--priority: is 101, outside -100..100/);
  assert.throws(() => parsePriority("1.5", "--priority"), /is not a whole number/);
});

Deno.test("submit's flags set delay_ms, run_at and priority; --delay and --at are one or the other", () => {
  const delayed = parseSubmitConfig(undefined, flags({ delay: "10m", priority: "7" }), ["true"]);
  assert.equal(delayed.params.delayMs, 600_000n);
  assert.equal(delayed.params.runAt, undefined);
  assert.equal(delayed.params.priority, 7);
  const at = parseSubmitConfig(undefined, flags({ at: SOON }), ["true"]);
  assert.equal(timestampMs(at.params.runAt!), SOON_MS);
  assert.equal(at.params.delayMs, 0n);
  assert.throws(
    () => parseSubmitConfig(undefined, flags({ delay: "1m", at: SOON }), ["true"]),
    /--delay and --at: give one, not both/,
  );
  const none = parseSubmitConfig(undefined, flags(), ["true"]);
  assert.deepEqual([none.params.delayMs, none.params.runAt, none.params.priority], [
    0n,
    undefined,
    0,
  ]);
});

Deno.test("job files and batch lines take delay, at and priority; flags give way to a file's keys", () => {
  const file = parseJobFile("command: make\ndelay: 5m\npriority: -3\n", "yaml", "job.yaml");
  const fromFile = parseSubmitConfig(undefined, flags(), undefined, file).params;
  assert.deepEqual([fromFile.delayMs, fromFile.priority], [300_000n, -3]);
  // YAML reads an unquoted time as a Date; it is taken as that instant.
  const atFile = parseJobFile(`command: make\nat: ${SOON}\n`, "yaml", "job.yaml");
  assert.equal(
    timestampMs(parseSubmitConfig(undefined, flags(), undefined, atFile).params.runAt!),
    SOON_MS,
  );
  const flagged = parseSubmitConfig(undefined, flags({ at: SOON }), undefined, file).params;
  assert.equal(flagged.delayMs, 0n, "the flag's start replaces the file's");
  assert.equal(flagged.priority, -3);
  assert.throws(
    () => parseJobFile(`command: x\ndelay: 1m\nat: ${SOON}\n`, "yaml", "j.yaml"),
    /--config j.yaml: delay and at: give one, not both/,
  );
  assert.throws(
    () => parseJobFile("command: x\npriority: 500\n", "yaml", "j.yaml"),
    /--config j.yaml: priority: is 500/,
  );

  const defaults = batchDefaults(undefined, flags({ priority: "2", delay: "1m" }), {}, "ada");
  const jobs = parseBatchLines(
    ['{"command": "a"}', `{"command": "b", "priority": 9, "at": "${SOON}"}`].join(
      "\n",
    ),
    defaults,
  );
  const params = jobs.map((j) => j.request.jobParams!);
  assert.deepEqual(params.map((p) => p.priority), [2, 9]);
  assert.deepEqual(params.map((p) => p.delayMs), [60_000n, 0n]);
  assert.throws(
    () => parseBatchLines('{"command": "a", "at": "2030-01-01T00:00"}', defaults),
    /line 1: at: "2030-01-01T00:00" has no time zone/,
  );
});

Deno.test("the server checks delay_ms, run_at and priority against their ranges", () => {
  const NOW = Date.UTC(2026, 11, 4);
  const check = (fields: object) => () =>
    validateJobParams(create(JobParamsSchema, { command: "x", ...fields }), NOW);
  check({ delayMs: 366n * 86_400_000n, priority: -100 })();
  check({ runAt: timestampFromMs(NOW - 59_000) })();
  const fails = (fn: () => unknown, field: string, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.equal(e.field, field);
      assert.match(e.message, pattern);
      return true;
    });
  fails(
    check({ delayMs: -1n }),
    "job_params.delay_ms",
    /is -1, outside 0..31622400000 \(366 days\)/,
  );
  // The past is judged where a new job is made (a repeat of its enqueue is answered): not here.
  check({ runAt: timestampFromMs(NOW - 61_000) })();
  fails(
    () => checkRunAtNotPast(create(JobParamsSchema, { runAt: timestampFromMs(NOW - 61_000) }), NOW),
    "job_params.run_at",
    /more than a minute in the past/,
  );
  fails(
    check({ runAt: timestampFromMs(NOW + 367 * 86_400_000) }),
    "job_params.run_at",
    /more than 366 days ahead/,
  );
  fails(
    check({ runAt: { seconds: 10n ** 15n, nanos: 0 } }),
    "job_params.run_at",
    /ms since 1970, more than 366 days ahead/,
  );
  fails(check({ runAt: { seconds: 1n, nanos: -1 } }), "job_params.run_at", /nanos -1/);
  fails(check({ delayMs: 5n, runAt: timestampFromMs(NOW + 1) }), "job_params.run_at", /both set/);
  fails(check({ priority: 101 }), "job_params.priority", /is 101, outside -100..100/);
});

Deno.test("a new job's first attempt waits for its run_at or its delay, and not for a time gone by", () => {
  const NOW = 1_000_000;
  const at = (fields: object) =>
    startNotBeforeMs(create(JobParamsSchema, { command: "x", ...fields }), NOW);
  assert.equal(at({}), 0);
  assert.equal(at({ delayMs: 5_000n }), NOW + 5_000);
  assert.equal(at({ runAt: timestampFromMs(NOW + 9_000) }), NOW + 9_000);
  assert.equal(at({ runAt: timestampFromMs(NOW - 9_000) }), 0);
});

Deno.test("submit and batch lines refuse a start time the server would, naming the flag or key", () => {
  const past = new Date(Date.now() - 3_600_000).toISOString();
  const far = new Date(Date.now() + 400 * 86_400_000).toISOString();
  assert.throws(
    () => parseSubmitConfig(undefined, flags({ at: past }), ["true"]),
    /^UsageError: --at: is .*, more than a minute in the past/,
  );
  assert.throws(
    () => parseSubmitConfig(undefined, flags({ at: far }), ["true"]),
    /^UsageError: --at: is .*, more than 366 days ahead/,
  );
  // With a request id, a late repeat is the server's to answer (with the job it made).
  const repeat = parseSubmitConfig(undefined, flags({ at: past, requestId: "nightly-1" }), [
    "true",
  ]);
  assert.ok(repeat.params.runAt !== undefined);
  const defaults = batchDefaults(undefined, flags(), {}, "ada");
  assert.throws(
    () => parseBatchLines(`{"command": "a"}\n{"command": "b", "at": "${past}"}`, defaults),
    /^UsageError: line 2: at: is .*, more than a minute in the past/,
  );
  assert.equal(
    parseBatchLines(`{"command": "b", "at": "${past}", "request_id": "r1"}`, defaults).length,
    1,
  );
});
