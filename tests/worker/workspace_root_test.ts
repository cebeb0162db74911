/**
 * The worker's area under the workspace root: what a worker killed with
 * SIGKILL left is removed by the next worker before it claims a job; areas of
 * running workers, foreign entries and anything behind a symlink stay.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { systemClock } from "../../src/clock.ts";
import { startWorker } from "../../src/worker/worker.ts";
import type { WorkerApi } from "../../src/worker/worker_api.ts";
import { claimWorkspaceArea, WorkspaceRootError } from "../../src/worker/workspace_root.ts";
import { memoryLog } from "../support/memory_log.ts";

const logger = memoryLog().logger;
const MODULE = new URL("../../src/worker/workspace_root.ts", import.meta.url).href;

async function withDirs(fn: (root: string, outside: string) => Promise<void>) {
  const scratch = await Deno.makeTempDir({ prefix: "airunner-wsroot-" });
  try {
    await Deno.mkdir(join(scratch, "outside"));
    await fn(join(scratch, "root"), join(scratch, "outside"));
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/**
 * A real process that claims an area, makes a job's checkout in it and
 * waits; it reports the area's directory on stdout.
 */
async function areaHolder(root: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { claimWorkspaceArea } from ${JSON.stringify(MODULE)};
       const area = await claimWorkspaceArea(${JSON.stringify(root)}, {
         keep: false, logger: { info() {} },
       });
       await Deno.mkdir(area.dir + "/0190-job-1-abc/sub", { recursive: true });
       await Deno.writeTextFile(area.dir + "/0190-job-1-abc/sub/VERSION", "feature\\n");
       await Deno.writeTextFile(area.dir + "/events-0190-1.spill", "x");
       console.log(area.dir);
       setInterval(() => {}, 60_000);`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the area holder ended before it claimed an area");
    text += value;
  }
  reader.releaseLock();
  void child.stdout.cancel().catch(() => {});
  return {
    dir: text.trim(),
    async kill() {
      child.kill("SIGKILL");
      await child.status;
    },
  };
}

Deno.test("what a worker killed with SIGKILL left is removed by the next claim; a live worker's area stays", async () => {
  await withDirs(async (root) => {
    const dead = await areaHolder(root);
    const alive = await areaHolder(root);
    try {
      await dead.kill();
      assert.ok(Deno.statSync(join(dead.dir, "0190-job-1-abc/sub/VERSION")).isFile, "left behind");

      const log = memoryLog();
      await using area = await claimWorkspaceArea(root, { keep: false, logger: log.logger });
      assert.equal(exists(dead.dir), false, "the dead worker's area is gone");
      assert.deepEqual(
        log.records().map((r) => [r.msg, r.areas]),
        [["removed the workspaces of workers that are no longer running", [
          dead.dir.slice(root.length + 1),
        ]]],
        "said once, naming it",
      );
      assert.equal(exists(`${dead.dir}.lock`), false, "and its lock file");
      assert.ok(Deno.statSync(join(alive.dir, "0190-job-1-abc/sub/VERSION")).isFile, "live kept");
      assert.equal(names(root).length, 4, "the live area and this one, each with its lock file");
      await area.release();
      assert.equal(names(root).length, 2, "released: only the live area is left");
    } finally {
      await alive.kill();
      await dead.kill().catch(() => {});
    }
  });
});

Deno.test("areas of workers in the same process are not each other's leftovers", async () => {
  await withDirs(async (root) => {
    const first = await claimWorkspaceArea(root, { keep: false, logger });
    await Deno.writeTextFile(join(first.dir, "checkout"), "x");
    const second = await claimWorkspaceArea(root, { keep: false, logger });
    assert.ok(Deno.statSync(join(first.dir, "checkout")).isFile);
    assert.notEqual(first.dir, second.dir);
    await first.release();
    await first.release(); // idempotent
    await second.release();
    assert.deepEqual(names(root), []);
  });
});

Deno.test("only airunner's own entries are removed: never foreign ones, never through a symlink", async () => {
  await withDirs(async (root, outside) => {
    await Deno.mkdir(root);
    await Deno.mkdir(join(outside, "precious"));
    await Deno.writeTextFile(join(outside, "precious", "data"), "keep me");
    await Deno.writeTextFile(join(outside, "lockish"), "keep me");
    // Foreign entries, some with names close to airunner's.
    await Deno.writeTextFile(join(root, "notes.txt"), "mine");
    await Deno.mkdir(join(root, "worker-abc"));
    await Deno.mkdir(join(root, "worker-0123456789abcdeg"));
    await Deno.mkdir(join(root, "0190-job-1-abc"));
    // Symlinks with airunner's names, pointing out of the root.
    await Deno.symlink(join(outside, "precious"), join(root, "worker-00000000000000aa"));
    await Deno.symlink(join(outside, "lockish"), join(root, "worker-00000000000000bb.lock"));
    // A dead worker's area (unlocked) with a symlink inside that points out.
    const dead = join(root, "worker-00000000000000cc");
    await Deno.mkdir(join(dead, "job"), { recursive: true });
    await Deno.writeTextFile(`${dead}.lock`, "");
    await Deno.symlink(join(outside, "precious"), join(dead, "job", "escape"));
    // A dead worker's area whose lock file it had already removed.
    await Deno.mkdir(join(root, "worker-00000000000000dd"));

    const area = await claimWorkspaceArea(root, { keep: false, logger });
    await area.release();
    assert.deepEqual(names(root), [
      "0190-job-1-abc",
      "notes.txt",
      "worker-00000000000000aa",
      "worker-00000000000000bb.lock",
      "worker-0123456789abcdeg",
      "worker-abc",
    ]);
    assert.equal(Deno.readTextFileSync(join(outside, "precious", "data")), "keep me");
    assert.equal(Deno.readTextFileSync(join(outside, "lockish")), "keep me");
  });
});

Deno.test("with keep, nothing is removed: not the dead workers' areas, not its own", async () => {
  await withDirs(async (root) => {
    const dead = await areaHolder(root);
    await dead.kill();
    const area = await claimWorkspaceArea(root, { keep: true, logger });
    await area.release();
    assert.ok(Deno.statSync(join(dead.dir, "0190-job-1-abc/sub/VERSION")).isFile);
    assert.ok(Deno.statSync(area.dir).isDirectory);
  });
});

Deno.test("a relative workspace root is refused", async () => {
  await assert.rejects(
    claimWorkspaceArea("relative/workspaces", { keep: false, logger }),
    (error: unknown) =>
      error instanceof WorkspaceRootError && /relative\/workspaces.*not an absolute path/.test(
        error.message,
      ),
  );
});

Deno.test("a starting worker removes what a killed worker left before it claims anything", async () => {
  await withDirs(async (root) => {
    const dead = await areaHolder(root);
    await dead.kill();
    const seenAtFirstClaim: boolean[] = [];
    let claimed: () => void = () => {};
    const firstClaim = new Promise<void>((resolve) => claimed = resolve);
    const api: WorkerApi = {
      claim: async (_queue, { signal }) => {
        seenAtFirstClaim.push(await Deno.stat(dead.dir).then(() => true, () => false));
        claimed();
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        return [];
      },
      extendLease: () => Promise.resolve({ cancelled: false }),
      publishEvents: () => Promise.resolve(),
      complete: () => Promise.resolve(),
    };
    await using worker = startWorker({
      api,
      queues: ["default"],
      concurrency: 1,
      clock: systemClock,
      logger,
      baseEnv: {},
      visibilityTimeoutSeconds: 30,
      killGraceMs: 100,
      shutdownGraceMs: 100,
      workspaceRoot: root,
      keepWorkspaces: false,
    });
    await firstClaim;
    assert.equal(seenAtFirstClaim[0], false, "the dead worker's area was gone at the first claim");
    await worker.close();
    // What stays is the directory of job-group ledgers (src/worker/group_ledger.ts).
    assert.deepEqual(names(root), [".running"], "and the worker's own area goes with it");
  });
});
