/**
 * The ledger of a worker's running job process groups: one file per running
 * worker in its state directory (`<workspace-root>/.running/`), one line per
 * group started and one per group ended, written by the worker's watcher
 * (job_groups.ts). It exists for the worker that starts after this one died
 * together with its watcher: that worker reads the ledgers of dead workers
 * to find the groups they left (leftover_groups.ts).
 *
 * Lines: `+ <pgid> <leader start ticks> <job id> <attempt>` when a job's
 * group starts, `- <pgid>` once it is gone; the watcher empties the file
 * whenever no group is left, and removes it when it exits. The file is named
 * after its worker's pid and start time (`worker-<pid>-<ticks>-<n>.groups`),
 * so a reader can tell whether that worker still runs, even when its pid was
 * reused.
 *
 * @module
 */
/** The state directory under a workspace root; workspace cleanup must leave it alone. */
export const RUNNING_DIR = ".running";

/** A job's process group as recorded. */
export interface LedgerEntry {
  readonly pgid: number;
  /** Start time of the group's leader (0 when it could not be read). */
  readonly leaderTicks: number;
  readonly jobId: string;
  readonly attempt: number;
}

/** The worker a ledger file belongs to, from its name (pure). */
export function ledgerOwner(fileName: string): { pid: number; startTicks: number } | undefined {
  const match = /^worker-(\d+)-(\d+)-\d+\.groups$/.exec(fileName);
  if (match === null) return undefined;
  return { pid: Number(match[1]), startTicks: Number(match[2]) };
}

/** The groups a ledger's text records as still running (pure; malformed lines are skipped). */
export function liveEntries(text: string): LedgerEntry[] {
  const live = new Map<number, LedgerEntry>();
  for (const line of text.split("\n")) {
    const [op, pgid, leaderTicks, jobId, attempt] = line.split(" ");
    const group = Number(pgid);
    if (!Number.isSafeInteger(group) || group <= 1) continue;
    if (op === "-") {
      live.delete(group);
    } else if (op === "+" && jobId !== undefined && /^[\w-]+$/.test(jobId)) {
      live.set(group, {
        pgid: group,
        leaderTicks: Number(leaderTicks) || 0,
        jobId,
        attempt: Number(attempt) || 0,
      });
    }
  }
  return [...live.values()];
}
