/**
 * Dependencies end to end under `airunner dev` (issue 23): a job submitted
 * with --after starts once its dependency ended well; a failing dependency
 * cancels the chain after it; an unknown id is refused and enqueues nothing.
 */
import assert from "node:assert/strict";
import { runAirunner, startDev } from "../support/airunner_process.ts";

Deno.test("b=$(submit --after $a) starts after a ends; a failing a cancels b and c after b", async () => {
  await using dev = await startDev({ prefix: "airunner-deps-e2e-", workers: 2 });
  const submit = async (...args: string[]) => {
    const r = await runAirunner(["submit", "--server", dev.server, ...args]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const get = async (id: string) =>
    JSON.parse((await runAirunner(["get", "--server", dev.server, "--json", id])).stdout);

  // Two workers: without the dependency, b would start at once, beside a.
  const a = await submit("--", "sh", "-c", "sleep 1.5; date +%s%N");
  const b = await submit("--after", a, "--", "date", "+%s%N");
  const waiting = await get(b);
  assert.deepEqual(waiting.after, [a]);
  const followed = await runAirunner([
    "submit",
    "--server",
    dev.server,
    "--wait",
    "--after",
    b,
    "--",
    "true",
  ]);
  assert.equal(followed.code, 0, followed.stderr);
  const [gotA, gotB] = [await get(a), await get(b)];
  assert.equal(gotA.state, "completed");
  assert.equal(gotB.state, "completed");
  assert.ok(
    Date.parse(gotB.startedAt) >= Date.parse(gotA.completedAt),
    `b started ${gotB.startedAt}, before a ended ${gotA.completedAt}`,
  );
  assert.deepEqual(gotB.waitingFor, []);

  // A failing first job cancels the chain after it; an --after-any job runs anyway.
  const bad = await submit("--", "sh", "-c", "sleep 2; exit 2");
  const next = await submit("--after", bad, "--", "echo", "never");
  const last = await submit("--after", next, "--", "echo", "never");
  const cleanup = await submit("--after-any", bad, "--", "echo", "cleanup");
  const listed = await runAirunner(["list", "--server", dev.server]);
  assert.match(listed.stdout, new RegExp(`${next} +default +scheduled \\(waiting for 1 job\\)`));
  const waited = await runAirunner([
    "submit",
    "--server",
    dev.server,
    "--wait",
    "--after",
    cleanup,
    "--",
    "true",
  ]);
  assert.equal(waited.code, 0, waited.stderr);
  const [gotNext, gotLast, gotCleanup] = [await get(next), await get(last), await get(cleanup)];
  assert.equal(gotNext.state, "cancelled");
  assert.equal(gotNext.cancelReason, `dependency ${bad} failed with exit 2`);
  assert.equal(gotLast.state, "cancelled");
  assert.equal(gotLast.cancelReason, `dependency ${next} was cancelled`);
  assert.equal(gotLast.exitCode, null, "it never ran");
  assert.equal(gotCleanup.state, "completed");
  const logs = await runAirunner(["logs", "--server", dev.server, cleanup]);
  assert.equal(logs.stdout, "cleanup\n");
});

Deno.test("an --after id that does not exist, or too many of them, is refused and enqueues nothing", async () => {
  await using dev = await startDev({ prefix: "airunner-deps-bad-e2e-" });
  const unknown = "01900000-0000-7000-8000-000000000000";
  const r = await runAirunner(["submit", "--server", dev.server, "--after", unknown, "--", "true"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`job_params\\.after\\[0\\]: job ${unknown} does not exist`));
  const typo = await runAirunner([
    "submit",
    "--server",
    dev.server,
    "--after",
    "nope",
    "--",
    "true",
  ]);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /--after: is not a UUID/);
  const many = Array.from(
    { length: 33 },
    (_, i) => `01900000-0000-7000-8000-${String(i).padStart(12, "0")}`,
  );
  const tooMany = await runAirunner([
    "submit",
    "--server",
    dev.server,
    "--after",
    many.join(","),
    "--",
    "true",
  ]);
  assert.equal(tooMany.code, 1);
  assert.match(
    tooMany.stderr,
    /job_params\.after: names 33 dependencies .*more than the limit of 32/,
  );
  const list = await runAirunner(["list", "--server", dev.server, "--json"]);
  assert.deepEqual(JSON.parse(list.stdout), []);
});
