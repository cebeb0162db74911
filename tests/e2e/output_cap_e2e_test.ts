/**
 * The output cap end to end: `airunner dev --max-job-output 1000`, a job
 * that prints a megabyte, and what followers, `logs` and the data dir see.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { runAirunner, startDev } from "../support/airunner_process.ts";

const MARKER = "airunner: output truncated after 1000 bytes\n";

Deno.test("dev --max-job-output 1000: a 1 MB job shows 1000 bytes, one marker on stderr, its exit code, and stores little", async () => {
  await using dev = await startDev({ prefix: "airunner-cap-", args: ["--max-job-output", "1000"] });
  const { server } = dev;
  const megabyte = "head -c 1000000 /dev/zero | tr '\\0' y";
  const follow = (script: string) =>
    runAirunner(["submit", "--server", server, "--follow", "--", "sh", "-c", script]);

  const followed = await follow(`${megabyte}; echo after the flood >&2; exit 4`);
  assert.equal(followed.code, 4, followed.stderr);
  assert.equal(followed.stdout, "y".repeat(1000));
  assert.equal(followed.stderr.split(MARKER).length - 1, 1, followed.stderr);
  assert.ok(!followed.stderr.includes("after the flood"), "output past the cap is not stored");

  // Exactly the cap: all of it, no marker.
  const exact = await follow("head -c 1000 /dev/zero | tr '\\0' x");
  assert.equal(exact.code, 0, exact.stderr);
  assert.equal(exact.stdout, "x".repeat(1000));
  assert.ok(!exact.stderr.includes("truncated"), exact.stderr);

  const listed = await runAirunner(["list", "--server", server, "--json"]);
  const [exactJob, floodJob] = (JSON.parse(listed.stdout) as { id: string }[]).map((j) => j.id);
  const logs = await runAirunner(["logs", "--server", server, floodJob!]);
  assert.equal(logs.code, 0, logs.stderr);
  assert.equal(logs.stdout, "y".repeat(1000));
  assert.equal(logs.stderr, MARKER);

  const stopped = await dev.stop("SIGINT");
  assert.equal(stopped.code, 0, stopped.stderr);
  const db = new DatabaseSync(join(dev.scratch, "data", "airunner.db"), { readOnly: true });
  try {
    const stored = (jobId: string) =>
      db.prepare(
        `SELECT COUNT(*) AS events, SUM(LENGTH(e.payload)) AS bytes, j.output_bytes, j.output_truncated
         FROM events e JOIN jobs j ON e.job = j.id WHERE j.job_id = ?`,
      ).get(jobId) as {
        events: number;
        bytes: number;
        output_bytes: number;
        output_truncated: number;
      };
    const flood = stored(floodJob!);
    // Process start, the output up to the cap with its marker, process end.
    assert.ok(flood.events <= 4, `${flood.events} events stored`);
    assert.ok(flood.bytes < 1_400, `${flood.bytes} bytes of events stored`);
    assert.equal(flood.output_bytes, 1000);
    assert.equal(flood.output_truncated, 1);
    const whole = stored(exactJob!);
    assert.equal(whole.output_bytes, 1000);
    assert.equal(whole.output_truncated, 0);
  } finally {
    db.close();
  }
});

Deno.test("--max-job-output refuses what is not a size, naming the flag and the limits", async () => {
  const refused = async (command: string, value: string) => {
    const result = await runAirunner([
      command,
      "--listen",
      "127.0.0.1:0",
      "--max-job-output",
      value,
    ]);
    assert.equal(result.code, 2, `${command} ${value}: ${result.stderr}`);
    return result.stderr;
  };
  const notASize = (value: string) =>
    `airunner: error: --max-job-output: "${value}" is not a size in bytes (examples: 1048576, 64MiB, 1GiB)\n`;
  assert.equal(await refused("server", "12XB"), notASize("12XB"));
  assert.equal(await refused("dev", "-1"), notASize("-1"));
  assert.equal(await refused("orchestrator", "1.5"), notASize("1.5"));
  assert.equal(
    await refused("server", "9PB"),
    notASize("9PB"),
  );
  assert.equal(
    await refused("server", "9000TiB"),
    "airunner: error: --max-job-output: 9000TiB is more than 9007199254740991 bytes\n",
  );
});
