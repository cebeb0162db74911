/**
 * Fleets of jobs from the CLI, against a real `airunner dev`: `wait` of
 * three jobs prints a line per job and exits with the failure's code,
 * `wait --any` with the first to end; `logs -f` of three jobs (by id, or by
 * `--metadata`) prints each line whole and prefixed with its job, stdout
 * and stderr apart, and exits with the worst exit code.
 */
import assert from "node:assert/strict";
import { runAirunner, startDev } from "../support/airunner_process.ts";
import { shortJobIds } from "../../src/cli/multi_follow.ts";

Deno.test("wait and logs -f of three jobs", async (t) => {
  await using dev = await startDev({ prefix: "airunner-fleet-e2e-", workers: 3 });
  const env = { AIRUNNER_SERVER: dev.server };
  const cli = (...args: string[]) => runAirunner(args, { env });
  const submit = async (group: string, shard: string, script: string) => {
    const r = await cli(
      "submit",
      "--metadata",
      `group=${group}`,
      "--metadata",
      `shard=${shard}`,
      "--",
      "sh",
      "-c",
      script,
    );
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  // Each sleeps a little, so that wait and logs -f see them run and end.
  const a = await submit("x", "a", "sleep 0.5; echo a-out");
  const b = await submit("x", "b", "sleep 0.5; echo b-out; exit 3");
  const c = await submit("x", "c", "sleep 0.5; echo c-out; echo c-err >&2; printf c-partial");
  const short = shortJobIds([a, b, c]);
  const p = (id: string) => `${short.get(id)} | `;

  await t.step("wait and logs -f follow them live, together", async () => {
    const [waited, followed] = await Promise.all([
      cli("wait", a, b, c),
      cli("logs", "-f", a, b, c),
    ]);

    assert.equal(waited.code, 3, waited.stderr);
    const lines = waited.stdout.trim().split("\n");
    assert.equal(lines.length, 3, waited.stdout);
    assert.deepEqual(
      lines.toSorted(),
      [
        `${a} completed exit 0`,
        `${b} failed exit 3`,
        `${c} completed exit 0`,
      ].toSorted(),
    );

    assert.equal(followed.code, 3, followed.stderr);
    assert.deepEqual(
      followed.stdout.split("\n").toSorted(),
      [
        "",
        `${p(a)}a-out`,
        `${p(b)}b-out`,
        `${p(c)}c-out`,
        `${p(c)}c-partial`,
      ].toSorted(),
    );
    assert.ok(followed.stdout.indexOf("c-out") < followed.stdout.indexOf("c-partial"));
    assert.deepEqual(
      followed.stderr.split("\n").toSorted(),
      [
        "",
        `${p(c)}c-err`,
        `airunner: job ${b} failed: exited with code 3`,
      ].toSorted(),
    );
  });

  await t.step("logs -f --metadata follows the jobs of that group", async () => {
    const group = await cli("logs", "-f", "--metadata", "group=x", "--prefix", "shard");
    assert.equal(group.code, 3, group.stderr);
    // Ended jobs are replayed side by side: each job's lines in order, the jobs in any.
    const byJob = (out: string, label: string) =>
      out.split("\n").filter((l) => l.startsWith(`${label} | `));
    assert.deepEqual(byJob(group.stdout, "a"), ["a | a-out"]);
    assert.deepEqual(byJob(group.stdout, "b"), ["b | b-out"]);
    assert.deepEqual(byJob(group.stdout, "c"), ["c | c-out", "c | c-partial"]);
    assert.equal(group.stdout.split("\n").length, 5, group.stdout);
    const json = await cli("logs", "--json", "--metadata", "group=x");
    assert.equal(json.code, 0, json.stderr);
    const objects = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
    // Without -f, one job after the other, oldest first; chunks as the worker read them.
    const output = objects.filter((o) => o.type === "output");
    const texts = (stream: string) => {
      const joined: [string, string][] = [];
      for (const o of output.filter((o) => o.stream === stream)) {
        const last = joined.at(-1);
        if (last !== undefined && last[0] === o.jobId) last[1] += o.text;
        else joined.push([o.jobId, o.text]);
      }
      return joined;
    };
    assert.deepEqual(texts("stdout"), [[a, "a-out\n"], [b, "b-out\n"], [c, "c-out\nc-partial"]]);
    assert.deepEqual(texts("stderr"), [[c, "c-err\n"]]);
    assert.ok(objects.some((o) => o.jobId === b && o.type === "process_end" && o.exitCode === 3));
  });

  await t.step("wait of ended jobs prints them in the order they ended", async () => {
    const waited = await cli("wait", "--json", c, b, a);
    assert.equal(waited.code, 3, waited.stderr);
    const objects = waited.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const ends = objects.map((o) => Date.parse(o.completedAt));
    assert.deepEqual(ends, ends.toSorted((x, y) => x - y));
    assert.deepEqual(objects.map((o) => o.id).toSorted(), [a, b, c].toSorted());
    assert.deepEqual(
      objects.find((o) => o.id === b),
      { ...objects.find((o) => o.id === b), state: "failed", exitCode: 3 },
    );
  });

  await t.step("wait --any exits with the first job to end", async () => {
    const slow = await submit("y", "slow", "sleep 30");
    const fast = await submit("y", "fast", "sleep 0.3; exit 5");
    const started = performance.now();
    const waited = await cli("wait", "--any", slow, fast);
    assert.ok(performance.now() - started < 20_000);
    assert.equal(waited.code, 5, waited.stderr);
    assert.equal(waited.stdout, `${fast} failed exit 5\n`);
    const both = await cli("wait", "--all", "--any", slow, fast);
    assert.equal(both.code, 2, "--all and --any do not go together");
    assert.equal((await cli("cancel", slow)).code, 0);
    const cancelled = await cli("wait", slow);
    assert.equal(cancelled.code, 130);
    assert.equal(cancelled.stdout, `${slow} cancelled exit 130\n`);
  });
});
