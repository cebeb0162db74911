/**
 * A worker killed with SIGKILL takes its jobs' processes with it, and a
 * worker started on the same workspace root kills what an earlier one left
 * before it claims anything (issue 18, hole 3). Real server and worker
 * processes; the jobs write to a ledger file the test reads.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  freePort,
  runAirunner,
  startAirunner,
  startServerProcess,
  waitForHealth,
} from "../support/airunner_process.ts";

const IS_LINUX = Deno.build.os === "linux";

async function withScratch(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "airunner-worker-death-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function server(dataDir: string) {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const process = startServerProcess(dataDir, port);
  await waitForHealth(url);
  return Object.assign(process, { url });
}

function worker(url: string, workspaceRoot: string) {
  return startAirunner([
    "worker",
    "--server",
    url,
    "--workspace-root",
    workspaceRoot,
    "--visibility-timeout",
    "30s",
  ]);
}

async function submit(url: string, script: string, processType = "pipe"): Promise<string> {
  const submitted = await runAirunner([
    "submit",
    "--server",
    url,
    "--process-type",
    processType,
    "--",
    "sh",
    "-c",
    script,
  ]);
  assert.equal(submitted.code, 0, submitted.stderr);
  return submitted.stdout.trim();
}

/** Waits until `path` holds a line, and returns it. */
async function waitForLine(path: string, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await Deno.readTextFile(path).catch(() => "");
    if (text.endsWith("\n")) return text.trim();
    if (Date.now() > deadline) throw new Error(`nothing written to ${path} in time`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Every process now, with its group and whether it is a zombie (the test
 * runs with --allow-all, so it may read /proc itself). Fields are counted
 * from the last ")", since the command name may hold spaces.
 */
function listProcesses(): { pid: number; pgrp: number; zombie: boolean }[] {
  const processes = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      processes.push({
        pid: Number(entry.name),
        pgrp: Number(fields[2]),
        zombie: fields[0] === "Z",
      });
    } catch {
      // Exited while being read.
    }
  }
  return processes;
}

/**
 * The pids of process group `pgid` that still run. Zombies do not count:
 * they run no code, and where init does not reap orphans (this test's VM)
 * they stay.
 */
function members(pgid: number): number[] {
  return listProcesses().filter((p) => p.pgrp === pgid && !p.zombie).map((p) => p.pid);
}

/** Waits up to `timeoutMs` for group `pgid` to be gone; returns the ms it took. */
async function groupGone(pgid: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (members(pgid).length > 0) {
    if (Date.now() - started > timeoutMs) {
      throw new Error(`group ${pgid} still runs after ${timeoutMs} ms: ${members(pgid)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

/** The direct children of `pid` (Linux). */
function childrenOf(pid: number): number[] {
  const text = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`);
  return text.trim().split(/\s+/).filter((s) => s !== "").map(Number);
}

/** Kills a group left running by a failed test, so one failure does not leak into the next. */
function killGroup(pgid: number) {
  try {
    Deno.kill(-pgid, "SIGKILL");
  } catch {
    // Gone, as it should be.
  }
}

for (const processType of ["pipe", "pty"]) {
  Deno.test({
    name:
      `kill -9 of a worker: its job's process group is gone within 5 s and never writes again [${processType}]`,
    ignore: !IS_LINUX,
    fn: () =>
      withScratch(async (dir) => {
        await using srv = await server(join(dir, "data"));
        const w = worker(srv.url, join(dir, "workspaces"));
        const ledger = join(dir, "ledger");
        const pidFile = join(dir, "pid");
        // A quiet job: nothing on stdout, a child of its own, a write long
        // after; deaf to the hangup of a pty job's terminal.
        await submit(
          srv.url,
          `trap '' HUP; echo $$ > ${pidFile}; (sleep 6; echo late >> ${ledger}) & sleep 6; echo late >> ${ledger}`,
          processType,
        );
        const pgid = Number(await waitForLine(pidFile));
        try {
          assert.ok(members(pgid).length >= 2, "the job and its child run");
          const killedAt = Date.now();
          const stopped = await w.stop("SIGKILL");
          await groupGone(pgid, 5_000);
          const tookMs = Date.now() - killedAt;
          // Past the point where the job would have written, had it survived.
          await new Promise((resolve) =>
            setTimeout(resolve, Math.max(0, killedAt + 7_000 - Date.now()))
          );
          assert.equal(await Deno.readTextFile(ledger).catch(() => ""), "");
          assert.ok(tookMs < 5_000);
          if (Deno.env.get("AIRUNNER_TEST_VERBOSE") === "1") {
            console.log(`${processType} job's group gone ${tookMs} ms after kill -9`);
          }
          assert.match(stopped.stderr, /jobs run as root|taking jobs/);
        } finally {
          killGroup(pgid);
        }
        await srv.stop();
      }),
  });
}

Deno.test({
  name:
    "a worker starting on the same workspace root kills what a dead worker and watcher left, before it claims",
  ignore: !IS_LINUX,
  fn: () =>
    withScratch(async (dir) => {
      await using srv = await server(join(dir, "data"));
      const workspaces = join(dir, "workspaces");
      const first = worker(srv.url, workspaces);
      const ledger = join(dir, "ledger");
      const pidFile = join(dir, "pid");
      await submit(
        srv.url,
        `echo $$ > ${pidFile}; trap '' HUP TERM; sleep 6; echo "late from attempt $AIRUNNER_ATTEMPT" >> ${ledger}`,
      );
      const pgid = Number(await waitForLine(pidFile));
      try {
        // Kill the watcher (the worker's child that is not the job), then the
        // worker: nothing is left to stop the job.
        const watchers = childrenOf(first.child.pid).filter((pid) =>
          Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("while read -r op g")
        );
        for (const pid of watchers) Deno.kill(pid, "SIGKILL");
        await first.stop("SIGKILL");
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.ok(members(pgid).length > 0, "the job outlived its worker and watcher");

        // Queued before the second worker starts, so it is the first thing claimed.
        const checkFile = join(dir, "check");
        await submit(
          srv.url,
          `state=$(cut -d ' ' -f 3 /proc/${pgid}/stat 2>/dev/null); if [ -n "$state" ] && [ "$state" != Z ]; then echo alive; else echo gone; fi > ${checkFile}`,
        );
        await using second = worker(srv.url, workspaces);
        assert.equal(await waitForLine(checkFile), "gone");
        await groupGone(pgid, 1_000);
        await new Promise((resolve) => setTimeout(resolve, 6_000));
        assert.equal(await Deno.readTextFile(ledger).catch(() => ""), "");
        const stopped = await second.stop();
        assert.match(stopped.stderr, /killed job processes that an earlier worker/);
      } finally {
        killGroup(pgid);
      }
      await srv.stop();
    }),
});
