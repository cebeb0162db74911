/** What an attempt's end means, from its facts alone: no process, no server. */
import assert from "node:assert/strict";
import {
  type AttemptEnd,
  attemptVerdict,
  durationOutcome,
  TIMEOUT_EXIT_CODE,
  withRefusedEvents,
} from "../../src/worker/attempt_outcome.ts";

const ended = (overrides: Partial<AttemptEnd> = {}): AttemptEnd => ({
  stopReason: undefined,
  leaseLost: false,
  exit: { exitCode: 0, signal: null },
  timeoutSeconds: 0,
  publishFailure: "",
  ...overrides,
});

Deno.test("a command that exits by itself completes the job with its exit code", () => {
  assert.deepEqual(attemptVerdict(ended()), {
    kind: "complete",
    result: { success: true, exitCode: 0, timedOut: false, errorMessage: "" },
  });
  assert.deepEqual(attemptVerdict(ended({ exit: { exitCode: 3, signal: null } })), {
    kind: "complete",
    result: { success: false, exitCode: 3, timedOut: false, errorMessage: "exited with code 3" },
  });
  assert.deepEqual(attemptVerdict(ended({ exit: { exitCode: 137, signal: "SIGKILL" } })), {
    kind: "complete",
    result: { success: false, exitCode: 137, timedOut: false, errorMessage: "killed by SIGKILL" },
  });
  assert.equal(durationOutcome(ended()), "succeeded");
  assert.equal(durationOutcome(ended({ exit: { exitCode: 3, signal: null } })), "failed");
});

Deno.test("a timeout fails the job with TIMEOUT_EXIT_CODE, whatever the command exited with", () => {
  const end = ended({
    stopReason: "timeout",
    timeoutSeconds: 5,
    exit: { exitCode: 143, signal: "SIGTERM" },
  });
  assert.deepEqual(attemptVerdict(end), {
    kind: "complete",
    result: {
      success: false,
      exitCode: TIMEOUT_EXIT_CODE,
      timedOut: true,
      errorMessage: "timed out after 5 s",
    },
  });
  assert.equal(durationOutcome(end), "timed_out");
});

Deno.test("a cancelled command keeps its exit code and says it was stopped", () => {
  const end = ended({ stopReason: "cancelled", exit: { exitCode: 143, signal: "SIGTERM" } });
  assert.deepEqual(attemptVerdict(end), {
    kind: "complete",
    result: {
      success: false,
      exitCode: 143,
      timedOut: false,
      errorMessage: "cancelled; the command was stopped",
    },
  });
  assert.equal(durationOutcome(end), "cancelled");
});

Deno.test("refused events say why", () => {
  const end = ended({
    stopReason: "publish_failed",
    publishFailure: "event too large",
    exit: { exitCode: 143, signal: "SIGTERM" },
  });
  assert.deepEqual(attemptVerdict(end), {
    kind: "complete",
    result: {
      success: false,
      exitCode: 143,
      timedOut: false,
      errorMessage: "the server refused the job's events: event too large",
    },
  });
  assert.equal(durationOutcome(end), "failed");
});

Deno.test("a lost lease reports nothing, even when the command ended first or was stopped for another reason", () => {
  for (const end of [ended({ leaseLost: true }), ended({ stopReason: "lease_lost" })]) {
    assert.deepEqual(attemptVerdict(end), { kind: "lease_lost" });
    assert.equal(durationOutcome(end), "lost");
  }
  const stopping = ended({ stopReason: "shutdown", leaseLost: true });
  assert.deepEqual(attemptVerdict(stopping), { kind: "lease_lost" });
});

Deno.test("the worker's stop hands the job back", () => {
  const end = ended({ stopReason: "shutdown", exit: { exitCode: 143, signal: "SIGTERM" } });
  assert.deepEqual(attemptVerdict(end), { kind: "hand_back" });
  assert.equal(durationOutcome(end), "handed_back");
});

Deno.test("refused events fail a result and keep a failing exit code", () => {
  assert.deepEqual(
    withRefusedEvents({ success: true, exitCode: 0, timedOut: false, errorMessage: "" }, "no"),
    {
      success: false,
      exitCode: 1,
      timedOut: false,
      errorMessage: "the server refused the job's events: no",
    },
  );
  assert.equal(
    withRefusedEvents({ success: false, exitCode: 7, timedOut: false, errorMessage: "x" }, "no")
      .exitCode,
    7,
  );
});
