/**
 * The shell examples in the README's "Scripting airunner" and "Retries"
 * sections run as written: each ```sh block goes to bash with an `airunner` command on PATH
 * (main.ts under Deno) and a real `airunner dev` behind AIRUNNER_SERVER.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startDev } from "../support/airunner_process.ts";
import { README, shellBlocksOf } from "../support/readme_blocks.ts";

Deno.test("the README's scripting examples run as written", async () => {
  const blocks = shellBlocksOf(await Deno.readTextFile(README), "Scripting airunner");
  const [exitCodeScript, fanOutScript, retrySafeScript, fleetScript] = blocks;
  assert.ok(
    blocks.length === 4 && exitCodeScript && fanOutScript && retrySafeScript && fleetScript,
  );

  await using dev = await startDev({ prefix: "airunner-readme-", workers: 3 });
  const { scratch } = dev;

  const run = dev.runScript;

  const exitCode = await run(exitCodeScript);
  assert.equal(exitCode.code, 0, exitCode.stderr);
  assert.equal(exitCode.stdout, "testing\ntests passed\n");

  const fanOut = await run(fanOutScript);
  assert.equal(fanOut.code, 0, fanOut.stderr);
  assert.equal(fanOut.stdout, "shard 1\nshard 2\nshard 3\n");

  const retrySafe = await run(retrySafeScript);
  assert.equal(retrySafe.code, 0, retrySafe.stderr);
  assert.equal(retrySafe.stdout, "nightly passed\n");
  assert.equal(await Deno.readTextFile(join(scratch, "nightly.log")), "nightly build\n");

  const fleet = await run(fleetScript);
  assert.equal(fleet.code, 0, fleet.stderr);
  assert.equal(fleet.stdout, "1 | shard 1\n2 | shard 2\n3 | shard 3\nall shards passed\n");

  // The same request id started one job, not two.
  const list = await run("airunner list --json");
  assert.equal(list.code, 0, list.stderr);
  const jobs = JSON.parse(list.stdout) as { command: string }[];
  assert.equal(jobs.filter((j) => j.command.includes("echo nightly build")).length, 1);
});

Deno.test("the README's retry examples run as written", async () => {
  const blocks = shellBlocksOf(await Deno.readTextFile(README), "Retries");
  const [flakyScript, deadLetterScript] = blocks;
  assert.ok(blocks.length === 2 && flakyScript && deadLetterScript);

  await using dev = await startDev({ prefix: "airunner-readme-retries-" });
  const flaky = await dev.runScript(flakyScript);
  assert.equal(flaky.code, 0, flaky.stderr);
  assert.equal(flaky.stdout, "flaked\npassed\nexit 0\n");
  assert.match(flaky.stderr, /^airunner: attempt 2 of 3 after exit 1, in [12] s$/m);

  const deadLetter = await dev.runScript(deadLetterScript);
  assert.equal(deadLetter.code, 0, deadLetter.stderr);
  const lines = deadLetter.stdout.trim().split("\n");
  // logs -f, its exit code, logs --attempt 2, the dry run's id, the rerun's exit code.
  assert.deepEqual(lines.slice(0, 5), ["try 1", "try 2", "try 3", "exit 3", "try 2"]);
  assert.match(lines[5]!, /^[0-9a-f-]{36}$/);
  assert.equal(lines[6], "exit 3");
  assert.equal(lines.length, 7);
  const redriven = await Deno.readTextFile(join(dev.scratch, "redriven.txt"));
  assert.equal(redriven.trim(), lines[5]);
});

Deno.test("the README's scheduling example runs as written", async () => {
  const [script] = shellBlocksOf(await Deno.readTextFile(README), "Scheduling");
  assert.ok(script !== undefined && script.includes("--delay 2s"));
  await using dev = await startDev({ prefix: "airunner-readme-scheduling-" });
  const startedMs = Date.now();
  const r = await dev.runScript(script);
  assert.equal(r.code, 0, r.stderr);
  const [started, row, urgent] = r.stdout.trim().split("\n");
  assert.ok(Number(started) * 1000 >= Math.floor(startedMs / 1000) * 1000 + 2_000, started);
  assert.match(row!, / scheduled \(starts in (59m\d+s|1h0m0s)\) +echo later /);
  assert.equal(urgent, "urgent");
  // The urgent job started before the five submitted ahead of it had all run.
  const jobs = JSON.parse((await dev.runScript("airunner list --json")).stdout) as {
    command: string;
    startedAt: string | null;
  }[];
  const start = (j: { startedAt: string | null }) => Date.parse(j.startedAt ?? "");
  const urgentStart = start(jobs.find((j) => j.command === "echo urgent")!);
  const sleeps = jobs.filter((j) => j.command === "sleep 1");
  assert.equal(sleeps.length, 5);
  // The first sleep starts while the loop still submits (a CLI start each);
  // the rest wait, and start after the urgent job, or have not started yet.
  const behind = sleeps.filter((j) => j.startedAt === null || start(j) > urgentStart).length;
  assert.ok(behind >= 2, `it went ahead of the backlog: ${behind} of 5 ran after it`);
});

Deno.test("the README's schedule examples run as written", async () => {
  const [, script] = shellBlocksOf(await Deno.readTextFile(README), "Scheduling");
  assert.ok(script !== undefined && script.includes("schedule add tick"));
  await using dev = await startDev({ prefix: "airunner-readme-schedules-" });
  const r = await dev.runScript(script);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines[0], "tick", "add prints the name");
  // list --schedule: a header, then one row per firing in the 5 s.
  const rows = lines.filter((l) => /^[0-9a-f-]{36} +default +\w+ +date \+%s /.test(l));
  assert.ok(rows.length >= 2 && rows.length <= 3, `${rows.length} jobs in 5 s:\n${r.stdout}`);
  assert.equal(lines.filter((l) => l.startsWith("next: ")).length, 5, "get shows 5 firings");
  assert.ok(lines.includes("nightly") && lines.includes("backup"), r.stdout);
  assert.equal(lines.at(-1), "nightly", "pause prints the name");
  const schedules = JSON.parse((await dev.runScript("airunner schedule list --json")).stdout);
  assert.deepEqual(
    schedules.map((s: { name: string; paused: boolean; timeZone: string; catchUp: string }) => [
      s.name,
      s.paused,
      s.timeZone,
      s.catchUp,
    ]),
    [["nightly", true, "Europe/Berlin", "latest"]],
  );
});

Deno.test("the README's dependency examples run as written", async () => {
  const [script] = shellBlocksOf(await Deno.readTextFile(README), "Dependencies");
  assert.ok(script !== undefined && script.includes("--after"));
  await using dev = await startDev({ prefix: "airunner-readme-deps-", workers: 2 });
  const r = await dev.runScript(script);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["cleanup", "deployed", "1"]);
  const jobs = JSON.parse((await dev.runScript("airunner list --json")).stdout) as {
    command: string;
    startedAt: string;
    completedAt: string;
  }[];
  const of = (command: string) => jobs.find((j) => j.command === command)!;
  const build = of("sh -c 'echo building; sleep 1'");
  const deploy = of("echo deploying");
  assert.ok(Date.parse(deploy.startedAt) >= Date.parse(build.completedAt), "deploy after build");
});
