/**
 * A workspace root someone else made first: the worker refuses it (and its
 * `.running`) unless they are its own private directories, and never kills
 * from a ledger that is not its own regular file (specs/security.md).
 * Run as root, the tests hand files to uid 65534 to play the other user.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { systemClock } from "../../src/clock.ts";
import { killLeftoverGroups, untrustedLedger } from "../../src/worker/leftover_groups.ts";
import { privateDirProblem, secureWorkspaceRoot } from "../../src/worker/root_ownership.ts";
import { effectiveUid } from "../../src/worker/run_as.ts";
import { startWorker } from "../../src/worker/worker.ts";
import type { WorkerApi } from "../../src/worker/worker_api.ts";
import { WorkspaceRootError } from "../../src/worker/workspace_root.ts";
import { runAirunner } from "../support/airunner_process.ts";
import { startJobGroup, startTicks } from "../support/job_group.ts";
import { memoryLog } from "../support/memory_log.ts";

const IS_LINUX = Deno.build.os === "linux";
const UID = IS_LINUX ? await effectiveUid() : null;
const AS_ROOT = UID === 0;
const OTHER = 65534;

function info(fields: Partial<Deno.FileInfo>): Deno.FileInfo {
  return {
    isFile: false,
    isDirectory: true,
    isSymlink: false,
    uid: 0,
    mode: 0o40700,
    nlink: 1,
    ...fields,
  } as Deno.FileInfo;
}

async function withScratch(fn: (scratch: string) => Promise<void>) {
  const scratch = await Deno.makeTempDir({ prefix: "airunner-rootown-" });
  try {
    await fn(scratch);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

Deno.test("a private directory is the worker's own, not a symlink, and closed to writers", () => {
  assert.equal(privateDirProblem(info({}), 0), undefined);
  assert.equal(privateDirProblem(info({ mode: 0o40711 }), 0), undefined, "--run-as opens it so");
  assert.equal(
    privateDirProblem(info({ isDirectory: false, isSymlink: true }), 0),
    "it is a symlink",
  );
  assert.equal(
    privateDirProblem(info({ isDirectory: false, isFile: true }), 0),
    "it is not a directory",
  );
  assert.equal(
    privateDirProblem(info({ uid: OTHER }), 0),
    "it is owned by uid 65534, not by this worker's uid 0",
  );
  assert.equal(
    privateDirProblem(info({ mode: 0o41777 }), 0),
    "its mode 1777 lets group or others write to it",
  );
  assert.equal(
    privateDirProblem(info({ mode: 0o40770 }), 0),
    "its mode 0770 lets group or others write to it",
  );
});

Deno.test("a ledger is trusted only as a regular file of the worker's uid with one link", () => {
  const file = { isFile: true, isDirectory: false, mode: 0o100644 };
  assert.equal(untrustedLedger(info(file), 0), undefined);
  assert.equal(
    untrustedLedger(info({ ...file, isFile: false, isSymlink: true }), 0),
    "it is a symlink",
  );
  assert.equal(untrustedLedger(info({}), 0), "it is not a regular file");
  assert.equal(untrustedLedger(info({ ...file, nlink: 2 }), 0), "it has 2 links");
  assert.equal(
    untrustedLedger(info({ ...file, uid: OTHER }), 0),
    "it is owned by uid 65534, not by this worker's uid 0",
  );
});

Deno.test({
  name: "a missing root and its .running are made 0700; an existing 0711 root passes",
  ignore: !IS_LINUX || UID === null,
  fn: () =>
    withScratch(async (scratch) => {
      const root = join(scratch, "a", "root");
      const previous = Deno.umask(0o022);
      try {
        await secureWorkspaceRoot(root, UID);
      } finally {
        Deno.umask(previous);
      }
      for (const dir of [root, join(root, ".running")]) {
        const made = await Deno.lstat(dir);
        assert.ok(made.isDirectory);
        assert.equal(made.uid, UID);
        assert.equal(made.mode! & 0o777, 0o700, dir);
      }
      await Deno.chmod(root, 0o711);
      await secureWorkspaceRoot(root, UID);
    }),
});

/** What secureWorkspaceRoot says of `root`, as a WorkspaceRootError. */
async function refusal(root: string): Promise<string> {
  const error = await secureWorkspaceRoot(root, UID).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof WorkspaceRootError, `refused: ${error}`);
  return error.message;
}

Deno.test({
  name: "a root or .running that is another user's, open to writers or a symlink is refused",
  ignore: !AS_ROOT,
  fn: () =>
    withScratch(async (scratch) => {
      const root = join(scratch, "root");
      const running = join(root, ".running");
      await Deno.mkdir(running, { recursive: true, mode: 0o700 });
      await Deno.chown(root, OTHER, OTHER);
      assert.match(await refusal(root), new RegExp(`${root}: it is owned by uid 65534, not by`));
      await Deno.chown(root, 0, 0);

      await Deno.chmod(running, 0o777);
      assert.match(await refusal(root), /\.running: its mode 0777 lets group or others write/);
      await Deno.chmod(running, 0o700);
      await Deno.chown(running, OTHER, OTHER);
      assert.match(await refusal(root), /\.running: it is owned by uid 65534/);

      const elsewhere = join(scratch, "elsewhere");
      await Deno.mkdir(elsewhere, { mode: 0o700 });
      await Deno.remove(running, { recursive: true });
      await Deno.symlink(elsewhere, running);
      assert.match(await refusal(root), /\.running: it is a symlink/);

      const linkedRoot = join(scratch, "linked-root");
      await Deno.symlink(elsewhere, linkedRoot);
      assert.match(await refusal(linkedRoot), /linked-root: it is a symlink/);
    }),
});

const idleApi: WorkerApi = {
  claim: () => Promise.resolve([]),
  extendLease: () => Promise.resolve({ cancelled: false }),
  publishEvents: () => Promise.resolve(),
  complete: () => Promise.resolve(),
};

Deno.test({
  name: "a worker on another user's root stops with a WorkspaceRootError and writes nothing there",
  ignore: !AS_ROOT,
  fn: () =>
    withScratch(async (scratch) => {
      const root = join(scratch, "root");
      await Deno.mkdir(root, { mode: 0o777 });
      await Deno.chmod(root, 0o777);
      await Deno.chown(root, OTHER, OTHER);
      const worker = startWorker({
        api: idleApi,
        queues: ["default"],
        concurrency: 1,
        clock: systemClock,
        logger: memoryLog().logger,
        baseEnv: {},
        visibilityTimeoutSeconds: 30,
        killGraceMs: 100,
        shutdownGraceMs: 100,
        workspaceRoot: root,
        keepWorkspaces: false,
      });
      await assert.rejects(worker.finished, WorkspaceRootError);
      assert.deepEqual([...Deno.readDirSync(root)], [], "no ledger directory, no area");
    }),
});

Deno.test({
  name: "airunner worker refuses another user's workspace root with one error line",
  ignore: !AS_ROOT,
  fn: () =>
    withScratch(async (scratch) => {
      const root = join(scratch, "root");
      await Deno.mkdir(root, { mode: 0o700 });
      await Deno.chown(root, OTHER, OTHER);
      const result = await runAirunner([
        "worker",
        "--server",
        "http://127.0.0.1:9",
        "--workspace-root",
        root,
      ]);
      assert.notEqual(result.code, 0);
      assert.match(
        result.stderr,
        new RegExp(
          `airunner: error: cannot use the workspace root ${root}: ${root}: it is owned by uid 65534, not by this worker's uid 0`,
        ),
      );
      assert.doesNotMatch(result.stderr, /worker taking jobs/);
    }),
});

Deno.test({
  name:
    "a planted ledger (another user's, a symlink, a hard link) kills nothing and is left in place",
  ignore: !AS_ROOT,
  fn: () =>
    withScratch(async (dir) => {
      const victim = startJobGroup("job-victim");
      try {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const line = `+ ${victim.pid} ${startTicks(victim.pid)} job-victim 1\n`;
        // Dead workers, by their names: this test's pid with start times it never had.
        const foreign = join(dir, `worker-${Deno.pid}-1-1.groups`);
        await Deno.writeTextFile(foreign, line);
        await Deno.chown(foreign, OTHER, OTHER);
        const target = join(dir, "target");
        await Deno.writeTextFile(target, line);
        const symlinked = join(dir, `worker-${Deno.pid}-2-1.groups`);
        await Deno.symlink(target, symlinked);
        const hardLinked = join(dir, `worker-${Deno.pid}-3-1.groups`);
        await Deno.link(target, hardLinked);
        const log = memoryLog();
        const kills = await killLeftoverGroups(dir, log.logger, UID);
        assert.deepEqual(kills, { groups: [], processes: [] });
        const problems = log.records()
          .filter((r) => String(r.msg).startsWith("ignored a ledger of job groups"))
          .map((r) => `${String(r.path).slice(dir.length + 1)}: ${r.problem}`).sort();
        assert.deepEqual(problems, [
          `worker-${Deno.pid}-1-1.groups: it is owned by uid 65534, not by this worker's uid 0`,
          `worker-${Deno.pid}-2-1.groups: it is a symlink`,
          `worker-${Deno.pid}-3-1.groups: it has 2 links`,
        ]);
        for (const path of [foreign, symlinked, hardLinked]) await Deno.lstat(path); // still there
        const status = await Promise.race([
          victim.status,
          new Promise((resolve) => setTimeout(() => resolve("running"), 200)),
        ]);
        assert.equal(status, "running", "the planted group was not signalled");
      } finally {
        try {
          Deno.kill(-victim.pid, "SIGKILL");
        } catch {
          // Gone.
        }
        await victim.status;
      }
    }),
});
