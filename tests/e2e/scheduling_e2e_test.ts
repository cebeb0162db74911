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

/** `airunner ARGS --json` against `server`, its stdout parsed. */
async function json(server: string, ...args: string[]) {
  const dashes = args.indexOf("--");
  const [own, job] = dashes < 0 ? [args, []] : [args.slice(0, dashes), args.slice(dashes)];
  const r = await runAirunner([...own, "--server", server, "--json", ...job]);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** The firing each job of `schedule` was made for (metadata schedule_firing), oldest first. */
async function firingsOf(server: string, schedule: string): Promise<number[]> {
  const listed = await json(server, "list", "--schedule", schedule, "--page-size", "100");
  const firings: number[] = [];
  for (const { id } of listed) {
    const job = await json(server, "get", id);
    assert.equal(job.metadata.schedule, schedule);
    firings.push(Date.parse(job.metadata.schedule_firing));
  }
  return firings.sort((a, b) => a - b);
}

Deno.test("a */2 * * * * * schedule makes one job every 2 s under dev; every schedule command has --json", async () => {
  await using dev = await startDev({ prefix: "airunner-schedule-e2e-" });
  const added = await json(
    dev.server,
    "schedule",
    "add",
    "tick",
    "--cron",
    "*/2 * * * * *",
    "--overlap",
    "allow",
    "--metadata",
    "team=ops",
    "--",
    "date",
    "+%s%N",
  );
  const addedMs = Date.now();
  assert.equal(added.name, "tick");
  assert.equal(added.nextFirings.length, 5);
  assert.equal(added.job.command, "date +%s%N");
  assert.deepEqual(added.job.metadata, { team: "ops" });
  await new Promise((resolve) => setTimeout(resolve, 7_000));
  const paused = await json(dev.server, "schedule", "pause", "tick");
  const pausedMs = Date.now();
  assert.equal(paused.paused, true);
  assert.deepEqual(paused.nextFirings, []);

  const firings = await firingsOf(dev.server, "tick");
  // Every even second between the add and the pause fired once (the edges may go either way).
  const expected = Math.floor(pausedMs / 2_000) - Math.floor(addedMs / 2_000);
  assert.ok(
    firings.length >= expected - 1 && firings.length <= expected + 1,
    `${firings.length} jobs for ${expected} firings`,
  );
  assert.ok(firings.length >= 3, `${firings.length} jobs in 7 s`);
  for (let i = 1; i < firings.length; i++) {
    assert.equal(firings[i]! - firings[i - 1]!, 2_000, "one job per firing, none skipped");
  }
  // Each job ran its command, at or after its firing.
  const details = await json(dev.server, "schedule", "get", "tick");
  assert.equal(details.recentJobs.length, firings.length);
  assert.ok(details.recentJobs.every((j: { state: string }) => j.state === "completed"));

  // Paused: no more jobs. A run by hand still makes one.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  assert.equal((await firingsOf(dev.server, "tick")).length, firings.length);
  const run = await json(dev.server, "schedule", "run", "tick");
  assert.equal(run.queue, "default");
  const listed = await json(dev.server, "schedule", "list");
  assert.deepEqual(listed.map((s: { name: string }) => s.name), ["tick"]);
  const resumed = await json(dev.server, "schedule", "resume", "tick");
  assert.equal(resumed.paused, false);
  assert.ok(Date.parse(resumed.lastFiringAt) >= pausedMs, "resumed from now");
  assert.deepEqual(await json(dev.server, "schedule", "delete", "tick"), {
    name: "tick",
    deleted: true,
  });
  const gone = await runAirunner(["schedule", "get", "tick", "--server", dev.server]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /^airunner: error: schedule "tick" not found/m);
});

Deno.test("bad schedules are refused, naming the flag, and store nothing", async () => {
  await using dev = await startDev({ prefix: "airunner-schedule-bad-e2e-" });
  const cases: [string[], RegExp][] = [
    [["--cron", "* * *"], /--cron: "\* \* \*" has 3 fields/],
    [
      ["--cron", "0 3 * * *", "--timezone", "Mars/Base"],
      /--timezone: "Mars\/Base" is not a time zone/,
    ],
    [["--cron", "0 3 * * *", "--overlap", "queue"], /--overlap/],
    [["--cron", "0 3 * * *", "--delay", "5s"], /unknown option '--delay'/],
    [[], /--cron: required/],
  ];
  for (const [flags, pattern] of cases) {
    const r = await runAirunner([
      "schedule",
      "add",
      "bad",
      "--server",
      dev.server,
      ...flags,
      "--",
      "true",
    ]);
    assert.equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  const r = await runAirunner([
    "schedule",
    "add",
    "-bad",
    "--server",
    dev.server,
    "--cron",
    "* * * * *",
    "--",
    "true",
  ]);
  assert.notEqual(r.code, 0);
  assert.deepEqual(await json(dev.server, "schedule", "list"), []);
});
