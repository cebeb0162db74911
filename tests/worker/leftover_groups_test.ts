/**
 * A starting worker kills what dead workers left (leftover_groups.ts): the
 * decision as a pure function of a process table, then for real with a
 * ledger written as a dead worker's watcher would have left it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ledgerOwner, liveEntries } from "../../src/worker/group_ledger.ts";
import { killLeftoverGroups, leftoverKills } from "../../src/worker/leftover_groups.ts";
import { parseMarks, parseStat, type ProcessStat } from "../../src/worker/proc_table.ts";
import { startJobGroup, startTicks } from "../support/job_group.ts";
import { memoryLog } from "../support/memory_log.ts";

const IS_LINUX = Deno.build.os === "linux";

function proc(pid: number, pgrp: number, startTicks: number): ProcessStat {
  return { pid, pgrp, startTicks, zombie: false };
}

const MARK = "AIRUNNER_JOB_ID=job-1\0AIRUNNER_ATTEMPT=2";
const SELF = { pid: 999, pgrp: 999 };

Deno.test("a recorded group whose leader has its recorded start time is killed", () => {
  const kills = leftoverKills(
    [{ pgid: 50, leaderTicks: 700, jobId: "job-1", attempt: 2 }],
    [proc(50, 50, 700), proc(51, 50, 710)],
    () => undefined,
    SELF,
  );
  assert.deepEqual(kills, { groups: [50], processes: [] });
});

Deno.test("a reused pid (another start time, no job marks) is never signalled", () => {
  const kills = leftoverKills(
    [{ pgid: 50, leaderTicks: 700, jobId: "job-1", attempt: 2 }],
    [proc(50, 50, 9_000), proc(51, 50, 9_001)],
    () => "PATH=/bin",
    SELF,
  );
  assert.deepEqual(kills, { groups: [], processes: [] });
});

Deno.test("a group whose leader is gone is killed when a member carries the job's marks", () => {
  const kills = leftoverKills(
    [{ pgid: 50, leaderTicks: 700, jobId: "job-1", attempt: 2 }],
    [proc(51, 50, 710)],
    (pid) => (pid === 51 ? `PATH=/bin\0${MARK}` : undefined),
    SELF,
  );
  assert.deepEqual(kills, { groups: [50], processes: [] });
});

Deno.test("the marks must name the same attempt: the next attempt elsewhere is left alone", () => {
  const kills = leftoverKills(
    [{ pgid: 50, leaderTicks: 0, jobId: "job-1", attempt: 2 }],
    [proc(51, 50, 710), proc(60, 60, 800)],
    () => "AIRUNNER_JOB_ID=job-1\0AIRUNNER_ATTEMPT=3",
    SELF,
  );
  assert.deepEqual(kills, { groups: [], processes: [] });
});

Deno.test("a marked process that left the group (setsid) is killed on its own; the starting worker never", () => {
  const kills = leftoverKills(
    [{ pgid: 50, leaderTicks: 700, jobId: "job-1", attempt: 2 }],
    [proc(50, 50, 700), proc(70, 70, 720), proc(SELF.pid, SELF.pgrp, 5)],
    (pid) => (pid === 70 || pid === SELF.pid ? MARK : undefined),
    SELF,
  );
  assert.deepEqual(kills, { groups: [50], processes: [70] });
});

Deno.test("/proc text is parsed as the kernel writes it, odd command names included", () => {
  const line = "4242 (a) b (c) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1 2";
  assert.deepEqual(parseStat(line), { pid: 4242, pgrp: 4240, startTicks: 123456, zombie: false });
  assert.equal(parseStat("4242 (cut short"), undefined);
  const marks = parseMarks(
    "/proc/7/environ:AIRUNNER_JOB_ID=x\0/proc/7/environ:AIRUNNER_ATTEMPT=1\0/proc/8/environ:AIRUNNER_JOB_ID=y\0",
  );
  assert.deepEqual([...marks], [[7, "AIRUNNER_JOB_ID=x\0AIRUNNER_ATTEMPT=1"], [
    8,
    "AIRUNNER_JOB_ID=y",
  ]]);
  assert.deepEqual(ledgerOwner("worker-12-345-67.groups"), { pid: 12, startTicks: 345 });
  assert.equal(ledgerOwner("worker-12-345-67.groups.new"), undefined);
  assert.deepEqual(
    liveEntries("+ 50 700 job-1 2\n+ 60 0 job-2 1\n- 60\n+ 1 5 init 1\n+ x y\n"),
    [{ pgid: 50, leaderTicks: 700, jobId: "job-1", attempt: 2 }],
  );
});

Deno.test({
  name:
    "a starting worker kills the groups in a dead worker's ledger and removes it; a live worker's ledger stays",
  ignore: !IS_LINUX,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "airunner-leftovers-" });
    const leftover = startJobGroup("job-left");
    const live = startJobGroup("job-live");
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      // A dead worker: this test's pid with a start time it never had.
      const deadLedger = join(dir, `worker-${Deno.pid}-1-1.groups`);
      await Deno.writeTextFile(
        deadLedger,
        `+ ${leftover.pid} ${startTicks(leftover.pid)} job-left 1\n`,
      );
      // A running worker (this test process) that shares the root.
      const liveLedger = join(dir, `worker-${Deno.pid}-${startTicks(Deno.pid)}-2.groups`);
      await Deno.writeTextFile(liveLedger, `+ ${live.pid} ${startTicks(live.pid)} job-live 1\n`);

      const log = memoryLog();
      const kills = await killLeftoverGroups(dir, log.logger);
      assert.deepEqual(kills, { groups: [leftover.pid], processes: [] });
      const status = await leftover.status;
      assert.equal(status.signal, "SIGKILL");
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [
        `worker-${Deno.pid}-${startTicks(Deno.pid)}-2.groups`,
      ]);
      assert.ok(
        log.records().some((r) =>
          String(r.msg).startsWith("killed job processes that an earlier worker")
        ),
      );
    } finally {
      for (const child of [leftover, live]) {
        try {
          Deno.kill(-child.pid, "SIGKILL");
        } catch {
          // Gone.
        }
        await child.status;
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});
