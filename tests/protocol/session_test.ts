import assert from "node:assert/strict";
import {
  SESSION_SILENT_HEARTBEATS,
  sessionSilenceLimitMs,
  SessionWatchdog,
} from "../../src/protocol/session.ts";

Deno.test("the silence limit is SESSION_SILENT_HEARTBEATS announced intervals; 0 announces none", () => {
  assert.equal(sessionSilenceLimitMs(10_000), SESSION_SILENT_HEARTBEATS * 10_000);
  assert.equal(sessionSilenceLimitMs(0), 0);
});

Deno.test("a tick after an interval in which nothing was sent calls for a heartbeat", () => {
  const watchdog = new SessionWatchdog(0);
  assert.equal(watchdog.tick(100), "heartbeat");
  watchdog.sent();
  assert.equal(watchdog.tick(200), "none");
  // Sending is forgotten at each tick.
  assert.equal(watchdog.tick(300), "heartbeat");
});

Deno.test("silence past the limit is fatal; hearing anything resets it", () => {
  const watchdog = new SessionWatchdog(0);
  watchdog.expectHeartbeatsEvery(100);
  assert.equal(watchdog.silenceLimitMs, 300);
  assert.equal(watchdog.tick(300), "heartbeat"); // exactly at the limit: still alive
  assert.equal(watchdog.tick(301), "silent");
  watchdog.heard(301);
  watchdog.sent();
  assert.equal(watchdog.tick(500), "none");
});

Deno.test("without announced heartbeats, silence never ends the session", () => {
  const watchdog = new SessionWatchdog(0);
  assert.equal(watchdog.silenceLimitMs, 0);
  assert.equal(watchdog.tick(1e9), "heartbeat");
});

Deno.test("while this side is not listening, the other side's silence is not held against it", () => {
  const watchdog = new SessionWatchdog(0);
  watchdog.expectHeartbeatsEvery(100);
  assert.equal(watchdog.tick(1000, false), "heartbeat");
  assert.equal(watchdog.tick(1000, true), "silent");
});
