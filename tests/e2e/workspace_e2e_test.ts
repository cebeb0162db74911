/**
 * Repository jobs under a real `airunner dev` with its default, relative,
 * data dir (`.airunner` in the directory it was started in): the job runs in
 * its own checkout of the branch it names, a failed checkout fails the job,
 * and what a dev killed with SIGKILL left in the workspace root is removed
 * when the next one starts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  freePort,
  runAirunner,
  startAirunner,
  waitForHealth,
} from "../support/airunner_process.ts";
import { git, makeTestRepo } from "../support/git_repo.ts";
import { waitUntil } from "../support/wait_until.ts";

/**
 * A scratch directory that is a git repository of its own (commit "outer"),
 * as a project directory people start `airunner dev` in is: a job that ran
 * anywhere but in its checkout would see this repository's files and log.
 */
async function projectDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "airunner-ws-e2e-" });
  await git(dir, "init", "--quiet", "--initial-branch=main");
  await Deno.writeTextFile(join(dir, "OUTER"), "outer\n");
  await git(dir, "add", "OUTER");
  await git(dir, "commit", "--quiet", "-m", "outer");
  return dir;
}

/** `airunner dev` started in `cwd` with no --data-dir, on a free port. */
async function devIn(cwd: string) {
  const port = freePort();
  const server = `http://127.0.0.1:${port}`;
  const dev = startAirunner(["dev", "--listen", `127.0.0.1:${port}`], { cwd });
  try {
    await waitForHealth(server);
  } catch (error) {
    await dev.stop("SIGKILL");
    throw error;
  }
  return { ...dev, server };
}

function killIfRunning(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

/** Directories under `dir` (symlinks not followed) that hold a file named `file`. */
function dirsHolding(dir: string, file: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const entry of Deno.readDirSync(d)) {
      if (entry.isFile && entry.name === file) found.push(d);
      if (entry.isDirectory && entry.name !== ".git") walk(join(d, entry.name));
    }
  };
  walk(dir);
  return found;
}

Deno.test("airunner dev with its default data dir runs a branch job in that branch's checkout; a failed checkout fails the job", async () => {
  const cwd = await projectDir();
  const repo = await makeTestRepo();
  const dev = await devIn(cwd);
  try {
    const submit = (...args: string[]) =>
      runAirunner(["submit", "--server", dev.server, "--follow", ...args]);

    const branch = await submit(
      repo.url,
      "--branch",
      "feature",
      "--",
      "sh",
      "-c",
      "ls; git log -1 --format=%H",
    );
    assert.equal(branch.code, 0, branch.stderr);
    assert.equal(branch.stdout, `FEATURE\nVERSION\nsub\n${repo.featureCommit}\n`);

    const missing = await submit(repo.url, "--branch", "no-such-branch", "--", "sh", "-c", "ls");
    assert.equal(missing.code, 126, "the checkout failed, so the job did not run");
    assert.match(missing.stderr, /git clone failed: .*no-such-branch/);
    assert.equal(missing.stdout, "", "nothing ran anywhere else");

    // The job's environment is the command's, never git's: a job's GIT_TRACE
    // (as GIT_CONFIG_* or GIT_SSH_COMMAND would) does not reach the checkout.
    const trace = join(cwd, "git-trace");
    const traced = await submit(repo.url, "--env", `GIT_TRACE=${trace}`, "--", "true");
    assert.equal(traced.code, 0, traced.stderr);
    assert.equal(await Deno.lstat(trace).then(() => true, () => false), false);

    const root = join(cwd, ".airunner", "workspaces");
    assert.deepEqual(
      [...Deno.readDirSync(root)].map((e) => e.name.replace(/[0-9a-f]{16}/, "X")).sort(),
      [".running", "worker-X", "worker-X.lock"],
      "the root holds the job-group ledgers and the worker's area, and no nested .airunner/workspaces",
    );
    // The worker removes a checkout after it has reported the job, so the
    // follower can see the job end a moment before its checkout is gone.
    await waitUntil(
      () => dirsHolding(root, "VERSION").length === 0,
      () => `finished jobs' checkouts are removed, yet ${dirsHolding(root, "VERSION")} stays`,
    );
  } finally {
    await dev.stop("SIGKILL");
    await repo.remove();
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("the checkout a dev killed with SIGKILL left is removed when dev starts again", async () => {
  const cwd = await projectDir();
  const repo = await makeTestRepo();
  const pidFile = join(cwd, "job.pid");
  let jobPid: number | undefined;
  let dev = await devIn(cwd);
  try {
    const submitted = await runAirunner([
      "submit",
      "--server",
      dev.server,
      repo.url,
      "--branch",
      "feature",
      "--",
      "sh",
      "-c",
      `echo $$ > ${pidFile}; exec sleep 300`,
    ]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const deadline = Date.now() + 30_000;
    while (jobPid === undefined && Date.now() < deadline) {
      const text = await Deno.readTextFile(pidFile).catch(() => "");
      if (text.endsWith("\n")) jobPid = Number(text.trim());
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(jobPid !== undefined, "the job started");
    const root = join(cwd, ".airunner", "workspaces");
    const [checkout] = dirsHolding(root, "FEATURE");
    assert.ok(checkout !== undefined, "the job runs in a checkout under the workspace root");

    await dev.stop("SIGKILL");
    killIfRunning(jobPid); // it may outlive its killed worker (issue 18, hole 3)
    jobPid = undefined;
    assert.ok(Deno.statSync(join(checkout, "FEATURE")).isFile, "left behind by the killed dev");

    dev = await devIn(cwd);
    const gone = Date.now() + 20_000;
    while (dirsHolding(root, "FEATURE").length > 0 && Date.now() < gone) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(dirsHolding(root, "FEATURE"), [], "the restarted dev removed it");
    const stopped = await dev.stop("SIGINT");
    assert.equal(stopped.code, 0, stopped.stderr);
  } finally {
    if (jobPid !== undefined) killIfRunning(jobPid);
    await dev.stop("SIGKILL");
    await repo.remove();
    await Deno.remove(cwd, { recursive: true });
  }
});
