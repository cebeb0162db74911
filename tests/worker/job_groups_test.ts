/**
 * The watcher of job_groups.ts, run for real: groups it was told of die
 * when its pipe closes (as when the worker dies), groups it was told have
 * ended are left alone, a pty-like child session dies too, and its ledger
 * holds what runs and is gone once it exits.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { liveEntries } from "../../src/worker/group_ledger.ts";
import { openJobGroups, WATCHER_SCRIPT } from "../../src/worker/job_groups.ts";
import { parseStat } from "../../src/worker/proc_table.ts";
import { memoryLog } from "../support/memory_log.ts";
import { waitUntil } from "../support/wait_until.ts";

const IS_LINUX = Deno.build.os === "linux";
/** Above Linux's largest pid (2^22): a group that cannot exist, safe to list and kill. */
const NO_SUCH_PID = 9_000_000;

/** A process group of its own running `script`, as a job's would be. */
function startGroup(script: string) {
  return new Deno.Command("setsid", {
    args: ["sh", "-c", script],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Whether process `pid` runs (a zombie does not). */
function runs(pid: number): boolean {
  try {
    const stat = parseStat(Deno.readTextFileSync(`/proc/${pid}/stat`).split("\n")[0]!);
    return stat !== undefined && !stat.zombie;
  } catch {
    return false;
  }
}

/** The watcher, started as the worker starts it; the test plays the worker. */
function startWatcher(stateDir: string) {
  return new Deno.Command("setsid", {
    args: ["sh", "-c", WATCHER_SCRIPT, "watcher", stateDir],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

Deno.test({
  name: "the watcher kills the groups it was told of when its pipe closes, and only those",
  ignore: !IS_LINUX,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "airunner-watcher-" });
    const listed = startGroup("sleep 30 & sleep 30");
    const ended = startGroup("sleep 30");
    // Like script(1): a child in a session of its own, under the listed leader.
    const withSession = startGroup("setsid sleep 30 & wait");
    try {
      await waitUntil(() =>
        Deno.readTextFileSync(`/proc/${withSession.pid}/task/${withSession.pid}/children`)
          .trim() !== ""
      );
      const sessionChild = Number(
        Deno.readTextFileSync(`/proc/${withSession.pid}/task/${withSession.pid}/children`).trim(),
      );
      const watcher = startWatcher(dir);
      const writer = watcher.stdin.getWriter();
      const say = (line: string) => writer.write(new TextEncoder().encode(line));
      await say(`+ ${listed.pid} job-a 1\n+ ${ended.pid} job-b 2\n+ ${withSession.pid} job-c 1\n`);
      await say(`- ${ended.pid}\n`);
      await say(`+ 1; kill -9 -1 x 1\n+ junk\n`); // not digits: ignored
      // The ledger lists what runs now, with each leader's start time.
      const expected = [[listed.pid, "job-a", 1], [withSession.pid, "job-c", 1]];
      let ledgerPath = "";
      let entries: ReturnType<typeof liveEntries> = [];
      const listing = () => entries.map((e) => [e.pgid, e.jobId, e.attempt]);
      // The watcher reads the lines in its own time: wait for all of them to show.
      await waitUntil(() => {
        const names = [...Deno.readDirSync(dir)].map((e) => e.name);
        ledgerPath = names.length === 1 ? join(dir, names[0]!) : "";
        entries = ledgerPath === "" ? [] : liveEntries(Deno.readTextFileSync(ledgerPath));
        return JSON.stringify(listing()) === JSON.stringify(expected);
      });
      assert.match(ledgerPath, new RegExp(`/worker-${Deno.pid}-\\d+-${watcher.pid}\\.groups$`));
      assert.ok(entries.every((e) => e.leaderTicks > 0));

      await writer.close(); // the worker died
      const status = await watcher.status;
      assert.equal(status.code, 0);
      await listed.status;
      await withSession.status;
      await waitUntil(() => !runs(sessionChild));
      assert.ok(runs(ended.pid), "a group told to have ended is never signalled");
      assert.deepEqual([...Deno.readDirSync(dir)], [], "the ledger is removed");
    } finally {
      for (const child of [listed, ended, withSession]) {
        try {
          Deno.kill(-child.pid, "SIGKILL");
        } catch {
          // Gone.
        }
      }
      await ended.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the watcher keeps its ledger short: emptied whenever no group runs",
  ignore: !IS_LINUX,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "airunner-watcher-" });
    const groups = openJobGroups(dir, memoryLog().logger);
    try {
      for (let i = 0; i < 50; i++) {
        groups.started(NO_SUCH_PID + i, `job-${i}`, 1);
        groups.ended(NO_SUCH_PID + i);
      }
      groups.started(NO_SUCH_PID - 1, "job-live", 3);
      let text = "";
      await waitUntil(() => {
        // The watcher writes `<ledger>.new` and renames it over the ledger,
        // so only the renamed file is read, and one renamed away meanwhile
        // is read again on the next try.
        const entry = [...Deno.readDirSync(dir)].find((e) => !e.name.endsWith(".new"));
        try {
          text = entry === undefined ? "" : Deno.readTextFileSync(join(dir, entry.name));
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
          text = "";
        }
        return text.includes("job-live");
      });
      assert.equal(text.trim().split("\n").length, 1, text);
      groups.ended(NO_SUCH_PID - 1);
    } finally {
      await groups.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
