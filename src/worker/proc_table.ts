/**
 * What Linux's /proc tells about processes, as far as a starting worker
 * needs it to find the processes of dead workers' jobs: each process's
 * group and start time (which tells a reused pid from the process once
 * recorded), and the job marks (`AIRUNNER_JOB_ID`, `AIRUNNER_ATTEMPT`) in its
 * environment.
 *
 * Deno lets a program read /proc only with `--allow-all`, which airunner
 * does not ask for; so /proc is read by one `sh` (and one `grep`) and their
 * output parsed here. Elsewhere (no /proc) the table is empty.
 *
 * @module
 */

/** One process, as /proc/<pid>/stat describes it. */
export interface ProcessStat {
  readonly pid: number;
  /** Its process group. */
  readonly pgrp: number;
  /** When it started, in clock ticks since boot: with the pid, names one process for good. */
  readonly startTicks: number;
  /** Whether it has exited and waits for its parent to reap it (runs no code any more). */
  readonly zombie: boolean;
}

/**
 * One line of /proc/<pid>/stat (pure). The command name in parentheses may
 * hold spaces and parentheses itself, so fields are counted from the last
 * `)`: field 3 is the state, 5 the group, 22 the start time.
 */
export function parseStat(line: string): ProcessStat | undefined {
  const close = line.lastIndexOf(")");
  const pid = Number(line.slice(0, line.indexOf(" (")));
  if (close < 0 || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const fields = line.slice(close + 2).split(" ");
  const pgrp = Number(fields[2]);
  const startTicks = Number(fields[19]);
  if (!Number.isSafeInteger(pgrp) || !Number.isSafeInteger(startTicks)) return undefined;
  return { pid, pgrp, startTicks, zombie: fields[0] === "Z" };
}

/**
 * The job marks per process in the output of `grep -a -z -H` over
 * /proc/<pid>/environ (pure): records `/proc/<pid>/environ:NAME=value`,
 * each ended by NUL. Returns each pid's marks as NUL-separated entries.
 */
export function parseMarks(output: string): Map<number, string> {
  const marks = new Map<number, string[]>();
  for (const record of output.split("\0")) {
    const match = /^\/proc\/(\d+)\/environ:(.*)$/s.exec(record);
    if (match === null) continue;
    const pid = Number(match[1]);
    const list = marks.get(pid) ?? [];
    list.push(match[2]!);
    marks.set(pid, list);
  }
  return new Map([...marks].map(([pid, list]) => [pid, list.join("\0")]));
}

/** Whether `environ` (NUL-separated entries) has every one of `entries` (pure). */
export function environHas(environ: string, entries: readonly string[]): boolean {
  const present = new Set(environ.split("\0"));
  return entries.every((entry) => present.has(entry));
}

/**
 * Prints the first line of every /proc/<pid>/stat: a process whose name
 * holds a newline is cut short there and fails to parse, so no process can
 * forge a line for another.
 */
const STAT_SCRIPT = `for f in /proc/[0-9]*/stat; do
  read -r s 2>/dev/null < "$f" && printf '%s\\n' "$s"
done`;

/** The process table and every process's job marks, now; empty where there is no /proc. */
export async function scanProcesses(): Promise<{
  processes: ProcessStat[];
  marks: Map<number, string>;
}> {
  const stats = await run("/bin/sh", ["-c", STAT_SCRIPT]);
  const processes = stats === undefined
    ? []
    : stats.split("\n").map(parseStat).filter((p) => p !== undefined);
  if (processes.length === 0) return { processes, marks: new Map() };
  // Through sh for the glob; grep exits 1 when nothing matched, which is an answer too.
  const grep = await run("/bin/sh", [
    "-c",
    `exec grep -a -z -H -E '^AIRUNNER_(JOB_ID|ATTEMPT)=' /proc/[0-9]*/environ 2>/dev/null`,
  ], [0, 1]);
  return { processes, marks: parseMarks(grep ?? "") };
}

async function run(
  command: string,
  args: string[],
  okCodes: readonly number[] = [0],
): Promise<string | undefined> {
  try {
    const output = await new Deno.Command(command, {
      args,
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin", LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return okCodes.includes(output.code) ? new TextDecoder().decode(output.stdout) : undefined;
  } catch {
    return undefined;
  }
}
