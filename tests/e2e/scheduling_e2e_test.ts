/**
 * Delayed starts and priorities end to end (issue 22), with real processes:
 * - `submit --delay 2s --follow -- date +%s%N` under `airunner dev` starts
 *   no earlier than 2 s after the submit.
 * - With no worker running, a `--priority 5` job submitted after five
 *   `--priority 0` jobs runs first once a worker starts.
 * - `--at` without a time zone, a time long past, a priority out of range
 *   are refused, naming the flag (exit 2), and nothing is enqueued.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  freePort,
  runAirunner,
  startAirunner,
  startDev,
  startServerProcess,
  waitForHealth,
} from "../support/airunner_process.ts";

Deno.test("submit --delay 2s --follow starts the job no earlier than 2 s after the submit", async () => {
  await using dev = await startDev({ prefix: "airunner-delay-e2e-" });
  const submittedMs = Date.now();
  const r = await runAirunner([
    "submit",
    "--server",
    dev.server,
    "--delay",
    "2s",
    "--follow",
    "--",
    "date",
    "+%s%N",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const startedMs = Number(BigInt(r.stdout.trim()) / 1_000_000n);
  assert.ok(startedMs - submittedMs >= 2_000, `started ${startedMs - submittedMs} ms after`);
  const id = /job (\S+) submitted/.exec(r.stderr)?.[1];
  const startsAt = /submitted to queue "default"; starts at (\S+)$/m.exec(r.stderr)?.[1];
  assert.ok(startsAt !== undefined, r.stderr);
  assert.ok(Math.abs(Date.parse(startsAt) - (submittedMs + 2_000)) < 1_500, startsAt);
  const got = JSON.parse(
    (await runAirunner(["get", "--server", dev.server, "--json", id!])).stdout,
  );
  assert.equal(got.delayMs, 2_000);
  assert.equal(got.state, "completed");
});

Deno.test("a --priority 5 job submitted after five --priority 0 jobs runs first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-priority-e2e-" });
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = startServerProcess(join(dir, "data"), port);
  try {
    await waitForHealth(url);
    const submit = async (priority: number, name: string) => {
      const r = await runAirunner([
        "submit",
        "--server",
        url,
        "--priority",
        String(priority),
        "--metadata",
        `name=${name}`,
        "--",
        "true",
      ]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    };
    const normal = [];
    for (let i = 0; i < 5; i++) normal.push(await submit(0, `normal-${i}`));
    const urgent = await submit(5, "urgent");
    const worker = startAirunner([
      "worker",
      "--server",
      url,
      "--workspace-root",
      join(dir, "workspaces"),
      "--concurrency",
      "1",
    ]);
    try {
      const ids = [...normal, urgent];
      let jobs: { id: string; state: string; startedAt: string }[] = [];
      for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
        const listed = await runAirunner(["list", "--server", url, "--json"]);
        jobs = JSON.parse(listed.stdout);
        if (jobs.filter((j) => ids.includes(j.id)).every((j) => j.state === "completed")) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const order = jobs.filter((j) => ids.includes(j.id))
        .sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt))
        .map((j) => j.id);
      assert.equal(order.length, 6, JSON.stringify(jobs));
      assert.equal(order[0], urgent, "the urgent job ran first");
      assert.deepEqual(order.slice(1), normal, "then the others, in the order submitted");
    } finally {
      await worker.stop("SIGKILL").catch(() => {});
    }
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad start times and priorities are refused, naming the flag, and enqueue nothing", async () => {
  await using dev = await startDev({ prefix: "airunner-start-bad-e2e-" });
  const refused = async (args: string[], pattern: RegExp) => {
    const r = await runAirunner(["submit", "--server", dev.server, ...args, "--", "true"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, pattern);
    assert.equal(r.stdout, "");
  };
  await refused(
    ["--at", "2026-12-24T09:00:00"],
    /--at: "2026-12-24T09:00:00" has no time zone; add Z/,
  );
  await refused(
    ["--at", "2020-01-01T00:00:00Z"],
    /--at: is 2020-01-01T00:00:00\.000Z, more than a minute in the past/,
  );
  await refused(["--priority", "101"], /--priority: is 101, outside -100\.\.100/);
  await refused(["--delay", "400d"], /--delay: "400d" is longer than the limit of 366 days/);
  await refused(["--delay", "1m", "--at", "2030-01-01T00:00:00Z"], /--delay and --at: give one/);
  const listed = await runAirunner(["list", "--server", dev.server, "--json"]);
  assert.deepEqual(JSON.parse(listed.stdout), []);
});
