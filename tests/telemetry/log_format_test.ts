import assert from "node:assert/strict";
import { formatLogLine } from "../../src/log_format.ts";

const line = JSON.stringify({
  level: 30,
  time: Date.UTC(2026, 10, 28, 12, 4, 5, 123),
  pid: 42,
  jobId: "01890a5d-ac96-774b-bcce-b302099a8057",
  command: "make test",
  exitCode: 0,
  msg: "job finished",
});

Deno.test("a pino record reads as one line: time, level, message, fields", () => {
  assert.equal(
    formatLogLine(line, false),
    '12:04:05.123 INFO  job finished jobId=01890a5d-ac96-774b-bcce-b302099a8057 command="make test" exitCode=0',
  );
});

Deno.test("colour only when asked; errors show their message; non-JSON passes through", () => {
  const ESC = "\x1b";
  assert.ok(formatLogLine(line, true).includes(`${ESC}[32mINFO ${ESC}[0m`), "INFO in green");
  assert.ok(!formatLogLine(line, false).includes(ESC), "no escape codes without colour");
  const failed = JSON.stringify({
    level: 50,
    time: 0,
    msg: "rpc failed",
    err: { message: "boom" },
  });
  assert.equal(formatLogLine(failed, false), "00:00:00.000 ERROR rpc failed boom");
  assert.equal(formatLogLine("plain text", false), "plain text");
});
