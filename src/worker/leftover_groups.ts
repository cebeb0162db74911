/**
 * What a starting worker does before it claims anything: kill the job
 * processes that earlier workers on the same workspace root left running
 * when they died together with their watcher (see job_groups.ts).
 *
 * It reads each ledger in the state directory whose worker no longer runs
 * (no process has that pid with that start time) and kills the groups it
 * lists as running, but only a group that is provably still that job's:
 * its leader still has the start time recorded, or one of its members
 * carries the job's `AIRUNNER_JOB_ID` and `AIRUNNER_ATTEMPT` in its
 * environment. A pid reused by something else since is never signalled.
 * Processes that carry the job's id and attempt outside its group (a
 * `setsid` grandchild that kept its environment, a pty job's session) are
 * killed too. Ledgers of workers that still run (another worker sharing the
 * root) are left alone, and so is any ledger that is not a regular file of
 * the worker's own uid with one link (a symlink, or a file someone else
 * planted or hard-linked there): nothing is killed from it. Linux only: elsewhere there is no /proc to check a
 * group against, and nothing is killed.
 *
 * @module
 */
import { join } from "node:path";
import type { Logger } from "../logger.ts";
import { type LedgerEntry, ledgerOwner, liveEntries } from "./group_ledger.ts";
import { environHas, type ProcessStat, scanProcesses } from "./proc_table.ts";
import { effectiveUid } from "./run_as.ts";

/** What to kill: whole groups, and single processes outside them. */
export interface LeftoverKills {
  readonly groups: readonly number[];
  readonly processes: readonly number[];
}

/**
 * Which of `entries` (groups a dead worker left) still run, and which other
 * processes carry their jobs' marks (pure: the process table and a reader
 * of environments are passed in). `self` (the starting worker, and its own
 * group) is never chosen: a worker started from inside a job carries the
 * job's marks.
 */
export function leftoverKills(
  entries: readonly LedgerEntry[],
  processes: readonly ProcessStat[],
  environOf: (pid: number) => string | undefined,
  self: { readonly pid: number; readonly pgrp: number },
): LeftoverKills {
  const marks = entries.map((e) => [`AIRUNNER_JOB_ID=${e.jobId}`, `AIRUNNER_ATTEMPT=${e.attempt}`]);
  const environs = new Map<number, string | undefined>();
  const carries = (pid: number, mark: readonly string[]) => {
    if (!environs.has(pid)) environs.set(pid, environOf(pid));
    const environ = environs.get(pid);
    return environ !== undefined && environHas(environ, mark);
  };
  const groups = new Set<number>();
  entries.forEach((entry, i) => {
    const mark = marks[i]!;
    const leader = processes.find((p) => p.pid === entry.pgid);
    const sameLeader = leader !== undefined && entry.leaderTicks !== 0 &&
      leader.startTicks === entry.leaderTicks && leader.pgrp === entry.pgid;
    const markedMember = processes.some((p) => p.pgrp === entry.pgid && carries(p.pid, mark));
    if ((sameLeader || markedMember) && entry.pgid !== self.pgrp) groups.add(entry.pgid);
  });
  const outside = processes
    .filter((p) =>
      p.pid !== self.pid && !groups.has(p.pgrp) && marks.some((mark) => carries(p.pid, mark))
    )
    .map((p) => p.pid);
  return { groups: [...groups], processes: outside };
}

/**
 * Why the ledger `info` describes must not be trusted by a worker running
 * as `uid` (null: unknown, not checked), or undefined when it may (pure).
 */
export function untrustedLedger(info: Deno.FileInfo, uid: number | null): string | undefined {
  if (info.isSymlink) return "it is a symlink";
  if (!info.isFile) return "it is not a regular file";
  if (info.nlink !== null && info.nlink > 1) return `it has ${info.nlink} links`;
  if (uid !== null && info.uid !== null && info.uid !== uid) {
    return `it is owned by uid ${info.uid}, not by this worker's uid ${uid}`;
  }
  return undefined;
}

/**
 * The text of the ledger at `path`, or undefined (said in a warning) when
 * it is not one to trust. The file read is checked to be the one checked.
 */
function readTrustedLedger(path: string, uid: number | null, logger: Logger): string | undefined {
  const named = Deno.lstatSync(path);
  let problem = untrustedLedger(named, uid);
  if (problem === undefined) {
    using file = Deno.openSync(path, { read: true });
    const opened = file.statSync();
    problem = untrustedLedger(opened, uid) ??
      (opened.ino !== named.ino || opened.dev !== named.dev ? "it was replaced" : undefined);
    if (problem === undefined) return new TextDecoder().decode(readAll(file));
  }
  logger.warn({ path, problem }, "ignored a ledger of job groups that is not this worker's own");
  return undefined;
}

function readAll(file: Deno.FsFile): Uint8Array {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  for (let n = file.readSync(buffer); n !== null && n > 0; n = file.readSync(buffer)) {
    chunks.push(buffer.slice(0, n));
  }
  const all = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

/**
 * Kills what dead workers' ledgers in `stateDir` left running, then removes
 * those ledgers. Returns what it killed. `uid` is the worker's (looked up
 * when not given); ledgers of other owners are ignored.
 */
export async function killLeftoverGroups(
  stateDir: string,
  logger: Logger,
  uid?: number | null,
): Promise<LeftoverKills> {
  const none = { groups: [], processes: [] };
  const ledgers: { path: string; owner: { pid: number; startTicks: number } }[] = [];
  try {
    for (const { name } of Deno.readDirSync(stateDir)) {
      const owner = ledgerOwner(name);
      // Whatever its kind: a symlink or directory by a ledger's name is warned of below.
      if (owner !== undefined) ledgers.push({ path: join(stateDir, name), owner });
    }
  } catch {
    return none; // No state dir yet: no worker ran here.
  }
  if (ledgers.length === 0) return none;
  const { processes, marks } = await scanProcesses();
  if (processes.length === 0) return none; // No /proc: nothing can be checked.
  const running = new Set(processes.map((p) => `${p.pid}:${p.startTicks}`));
  const workerUid = uid === undefined ? await effectiveUid() : uid;
  const entries: LedgerEntry[] = [];
  const deadLedgers: string[] = [];
  for (const { path, owner } of ledgers) {
    if (running.has(`${owner.pid}:${owner.startTicks}`)) continue; // its worker still runs
    try {
      const text = readTrustedLedger(path, workerUid, logger);
      if (text === undefined) continue; // not removed either: not this worker's to touch
      entries.push(...liveEntries(text));
      deadLedgers.push(path);
    } catch (error) {
      logger.warn({ err: error, path }, "cannot read a dead worker's ledger of job groups");
    }
  }
  const self = processes.find((p) => p.pid === Deno.pid);
  const kills = entries.length === 0 ? none : leftoverKills(
    entries,
    processes,
    (pid) => marks.get(pid),
    { pid: Deno.pid, pgrp: self?.pgrp ?? Deno.pid },
  );
  for (const pgid of kills.groups) signal(-pgid);
  for (const pid of kills.processes) signal(pid);
  if (kills.groups.length + kills.processes.length > 0) {
    logger.warn(
      {
        jobs: entries.map((e) => `${e.jobId}#${e.attempt}`),
        groups: kills.groups,
        processes: kills.processes,
      },
      "killed job processes that an earlier worker on this workspace root left running",
    );
  }
  for (const path of deadLedgers) {
    try {
      Deno.removeSync(path);
    } catch {
      // Another starting worker removed it first.
    }
  }
  return kills;
}

function signal(target: number): void {
  try {
    Deno.kill(target, "SIGKILL");
  } catch {
    // Gone meanwhile.
  }
}
