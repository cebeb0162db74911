/** A stand-in for a job's process group, for the tests of leftover-group cleanup. */
import { parseStat } from "../../src/worker/proc_table.ts";

/** A group of its own, as a job's would be, carrying the marks of `jobId` attempt 1. */
export function startJobGroup(jobId: string): Deno.ChildProcess {
  return new Deno.Command("setsid", {
    args: ["sh", "-c", "sleep 30 & sleep 30"],
    env: { AIRUNNER_JOB_ID: jobId, AIRUNNER_ATTEMPT: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** The start time of `pid` in clock ticks, as /proc says. */
export function startTicks(pid: number): number {
  return parseStat(Deno.readTextFileSync(`/proc/${pid}/stat`).split("\n")[0]!)!.startTicks;
}
