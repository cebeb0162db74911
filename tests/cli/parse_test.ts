import assert from "node:assert/strict";
import { join } from "node:path";
import { parseWorkerConfig } from "../../src/cli/worker.ts";
import { parseEventTypes } from "../../src/cli/monitor.ts";
import { JobState } from "../../gen/job/v1/job_pb.ts";
import {
  isLoopback,
  parseByteSize,
  parseDurationMs,
  parseJobState,
  parseKeyValues,
  parseListenAddress,
  UsageError,
} from "../../src/cli/parse.ts";

Deno.test("durations", () => {
  assert.equal(parseDurationMs("90s", "--t"), 90_000);
  assert.equal(parseDurationMs("5m", "--t"), 300_000);
  assert.equal(parseDurationMs("1h30m", "--t"), 5_400_000);
  assert.equal(parseDurationMs("250ms", "--t"), 250);
  assert.equal(parseDurationMs("12", "--t"), 12_000);
  for (const bad of ["", "soon", "5x", "m5", "5m soon"]) {
    assert.throws(() => parseDurationMs(bad, "--t"), UsageError, bad);
  }
});

Deno.test("sizes in bytes: plain, binary and decimal units, any case, bounded", () => {
  const max = Number.MAX_SAFE_INTEGER;
  assert.equal(parseByteSize("1000", "--s", max), 1000);
  assert.equal(parseByteSize("0", "--s", max), 0);
  assert.equal(parseByteSize("64MiB", "--s", max), 64 * 1024 * 1024);
  assert.equal(parseByteSize("1gib", "--s", max), 2 ** 30);
  assert.equal(parseByteSize("1.5KiB", "--s", max), 1536);
  assert.equal(parseByteSize("500MB", "--s", max), 500_000_000);
  assert.equal(parseByteSize(" 12 B ", "--s", max), 12);
  for (const bad of ["", "-1", "1.5", "12XB", "MiB", "1e6", "0x10", "1 2"]) {
    assert.throws(
      () => parseByteSize(bad, "--s", max),
      (e: unknown) =>
        e instanceof UsageError && e.message.startsWith("--s:") && e.message.includes("64MiB"),
      bad,
    );
  }
  assert.throws(
    () => parseByteSize("2KiB", "--s", 1000),
    (e: unknown) => e instanceof UsageError && e.message === "--s: 2KiB is more than 1000 bytes",
  );
});

Deno.test("listen addresses", () => {
  assert.deepEqual(parseListenAddress("127.0.0.1:8080"), { hostname: "127.0.0.1", port: 8080 });
  assert.deepEqual(parseListenAddress("[::1]:9"), { hostname: "::1", port: 9 });
  assert.deepEqual(parseListenAddress("8080"), { hostname: "127.0.0.1", port: 8080 });
  assert.deepEqual(parseListenAddress(":8080"), { hostname: "0.0.0.0", port: 8080 });
  assert.throws(() => parseListenAddress("host:99999"), UsageError);
  assert.throws(() => parseListenAddress("host:http"), UsageError);
  assert.ok(isLoopback("127.0.0.1") && isLoopback("::1") && isLoopback("localhost"));
  assert.ok(!isLoopback("0.0.0.0") && !isLoopback("10.0.0.1"));
});

Deno.test("KEY=VALUE lists: values may hold '=' or be empty; later entries win", () => {
  assert.deepEqual(parseKeyValues(["A=1", "B=x=y", "C=", "A=2"], "--env"), {
    A: "2",
    B: "x=y",
    C: "",
  });
  assert.throws(() => parseKeyValues(["=v"], "--env"), UsageError);
});

Deno.test("job states by name, any case", () => {
  assert.equal(parseJobState("failed"), JobState.FAILED);
  assert.equal(parseJobState("RUNNING"), JobState.RUNNING);
  assert.throws(() => parseJobState("unspecified"), UsageError);
  assert.throws(() => parseJobState("done"), UsageError);
});

Deno.test("a relative --workspace-root is made absolute once, against the directory the worker starts in", () => {
  const config = parseWorkerConfig({
    server: "http://127.0.0.1:8080",
    queue: "default",
    concurrency: "1",
    visibilityTimeout: "60s",
    shutdownGrace: "30s",
    workspaceRoot: ".airunner/workspaces",
    keepWorkspaces: false,
    protocol: "auto",
  });
  assert.equal(config.workspaceRoot, join(Deno.cwd(), ".airunner", "workspaces"));
});

Deno.test("--event-filter takes event type names in any case, never numbers", () => {
  assert.deepEqual(parseEventTypes("process_start,OUTPUT_BATCH"), [1, 7]);
  assert.deepEqual(parseEventTypes("EVENT_TYPE_HEARTBEAT"), [4]);
  assert.throws(
    () => parseEventTypes("5"),
    /--event-filter: "5" is not an event type \(process_start,/,
  );
  assert.throws(() => parseEventTypes("unspecified"), UsageError);
});

Deno.test("--state takes state names, never numbers", () => {
  assert.equal(parseJobState("FAILED"), 4);
  assert.throws(() => parseJobState("3"), /--state: "3" is not one of scheduled/);
});
