/**
 * Retries end to end (issue 21), with real processes: an `airunner server`
 * on a sqlite store, `airunner worker`s, and the CLI as a user runs it.
 * - A flaky job succeeds on its second attempt: `submit --follow` exits 0
 *   with one separator line between the attempts.
 * - A job that always exits 3 ends FAILED "exhausted" after 3 attempts;
 *   `submit --follow` exits 3. `redrive` puts it back (same id, attempts
 *   kept) and `rerun` makes a new job linked to it.
 * - kill -9 of its worker three times ends a `--retries 2` job FAILED
 *   "worker lost 3 times".
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type AirunnerProcess,
  freePort,
  runAirunner,
  startAirunner,
  startServerProcess,
  waitForHealth,
} from "../support/airunner_process.ts";

interface AttemptJson {
  readonly number: number;
  readonly worker: string;
  readonly outcome: string;
  readonly exitCode: number | null;
}

interface JobJson {
  readonly id: string;
  readonly state: string;
  readonly exitCode: number | null;
  readonly error: string | null;
  readonly failureReason: string | null;
  readonly rerunOf: string | null;
  readonly attempts: readonly AttemptJson[];
}

async function withServer(
  fn: (srv: { url: string; dir: string; worker: (queue: string) => AirunnerProcess }) => Promise<
    void
  >,
) {
  const dir = await Deno.makeTempDir({ prefix: "airunner-retries-e2e-" });
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = startServerProcess(join(dir, "data"), port);
  const workers: AirunnerProcess[] = [];
  try {
    await waitForHealth(url);
    let n = 0;
    const worker = (queue: string) => {
      n++;
      const w = startAirunner([
        "worker",
        "--server",
        url,
        "--queue",
        queue,
        "--name",
        `w${n}`,
        "--workspace-root",
        join(dir, `workspaces-${n}`),
        "--visibility-timeout",
        "2s",
      ]);
      workers.push(w);
      return w;
    };
    await fn({ url, dir, worker });
  } finally {
    for (const w of workers) await w.stop("SIGKILL").catch(() => {});
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function cli(url: string, ...args: string[]) {
  return await runAirunner([...args.slice(0, 1), "--server", url, ...args.slice(1)]);
}

async function getJob(url: string, id: string): Promise<JobJson> {
  const got = await cli(url, "get", id, "--json");
  assert.equal(got.code, 0, got.stderr);
  return JSON.parse(got.stdout) as JobJson;
}

/** Polls `check` every 100 ms until it holds, for up to `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The separator lines `--follow` printed on stderr. */
function separators(stderr: string): string[] {
  return stderr.split("\n").filter((line) => /^airunner: attempt \d+ of \d+/.test(line));
}

Deno.test("retries end to end: flaky job, exhausted job, redrive and rerun", () =>
  withServer(async ({ url, dir, worker }) => {
    worker("default");
    const mark = join(dir, "mark");
    const flaky = await cli(
      url,
      "submit",
      "--retries",
      "2",
      "--retry-delay",
      "1s",
      "--env",
      `MARK=${mark}`,
      "--follow",
      "--",
      "sh",
      "-c",
      'test -f "$MARK" || { touch "$MARK"; echo first; exit 1; }; echo second',
    );
    assert.equal(flaky.code, 0, flaky.stderr);
    assert.equal(flaky.stdout, "first\nsecond\n");
    const lines = separators(flaky.stderr);
    assert.equal(lines.length, 1, flaky.stderr);
    assert.match(lines[0]!, /^airunner: attempt 2 of 3 after exit 1, in [12] s$/);

    const always = await cli(
      url,
      "submit",
      "--retries",
      "2",
      "--retry-delay",
      "100ms",
      "--metadata",
      "suite=e2e",
      "--follow",
      "--",
      "sh",
      "-c",
      'echo "try $AIRUNNER_ATTEMPT"; exit 3',
    );
    assert.equal(always.code, 3, always.stderr);
    assert.equal(separators(always.stderr).length, 2, always.stderr);
    const id = /job (\S+) submitted/.exec(always.stderr)![1]!;
    const failed = await getJob(url, id);
    assert.equal(failed.state, "failed");
    assert.equal(failed.failureReason, "exhausted");
    assert.equal(failed.error, "3 of 3 attempts failed; last exit 3");
    assert.deepEqual(failed.attempts.map((a) => [a.number, a.outcome, a.exitCode, a.worker]), [
      [1, "failed", 3, "w1"],
      [2, "failed", 3, "w1"],
      [3, "failed", 3, "w1"],
    ]);
    // One attempt's output alone.
    const second = await cli(url, "logs", id, "--attempt", "2");
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, "try 2\n");

    // A dry run changes nothing; a filter that matches nothing puts nothing back.
    const dry = await cli(url, "redrive", "--dry-run", "--json", "--metadata", "suite=e2e");
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(JSON.parse(dry.stdout).map((j: { id: string }) => j.id), [id]);
    assert.equal((await getJob(url, id)).state, "failed");
    const none = await cli(url, "redrive", "--exit-code", "4");
    assert.equal(none.stdout, "");
    assert.match(none.stderr, /0 job\(s\) went back/);

    const redriven = await cli(url, "redrive", "--queue", "default", "--exit-code", "3");
    assert.equal(redriven.code, 0, redriven.stderr);
    assert.equal(redriven.stdout.trim(), id);
    // It runs three more attempts, numbered after the first three.
    await eventually(async () => {
      const job = await getJob(url, id);
      return job.state === "failed" && job.attempts.length === 6;
    }, "three more attempts");
    assert.deepEqual((await getJob(url, id)).attempts.map((a) => a.number), [1, 2, 3, 4, 5, 6]);

    const rerun = await cli(url, "rerun", id, "--follow");
    assert.equal(rerun.code, 3, rerun.stderr);
    const rerunId = /job (\S+) \(a rerun of/.exec(rerun.stderr)![1]!;
    assert.notEqual(rerunId, id);
    const copy = await getJob(url, rerunId);
    assert.equal(copy.rerunOf, id);
    assert.equal(copy.attempts.length, 3, "the copy keeps the retry policy");

    // A job that failed without a retry applying is no dead letter.
    const plain = await cli(url, "submit", "--wait", "--", "sh", "-c", "exit 127");
    assert.equal(plain.code, 127);
    const plainId = (await cli(url, "list", "--json")).stdout;
    const newest = (JSON.parse(plainId) as { id: string }[])[0]!.id;
    assert.equal((await getJob(url, newest)).failureReason, null);
  }));

Deno.test("kill -9 of the worker three times ends a --retries 2 job FAILED, worker lost", () =>
  withServer(async ({ url, dir, worker }) => {
    const ledger = join(dir, "ledger");
    const submitted = await cli(
      url,
      "submit",
      "--queue",
      "poison",
      "--retries",
      "2",
      "--env",
      `LEDGER=${ledger}`,
      "--",
      "sh",
      "-c",
      'echo "$AIRUNNER_ATTEMPT" >> "$LEDGER"; sleep 60',
    );
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = submitted.stdout.trim();
    for (let attempt = 1; attempt <= 3; attempt++) {
      const w = worker("poison");
      await eventually(async () => {
        const text = await Deno.readTextFile(ledger).catch(() => "");
        return text.trim().split("\n").length === attempt && text.endsWith("\n");
      }, `attempt ${attempt} started`);
      await w.stop("SIGKILL");
    }
    await eventually(async () => (await getJob(url, id)).state === "failed", "the job failed");
    const job = await getJob(url, id);
    assert.equal(job.failureReason, "worker_lost");
    assert.equal(job.exitCode, null, "a lost job never exited");
    assert.equal(job.error, "worker lost 3 times");
    assert.deepEqual(job.attempts.map((a) => [a.number, a.outcome]), [
      [1, "lost"],
      [2, "lost"],
      [3, "lost"],
    ]);
    assert.equal(await Deno.readTextFile(ledger), "1\n2\n3\n");
  }));
