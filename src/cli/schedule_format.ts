/**
 * How `airunner schedule` shows schedules (pure): the JSON of `--json`, the
 * table of `schedule list` and the "name: value" view of `schedule get`.
 *
 * @module
 */
import type { Job, Schedule } from "../../gen/job/v1/job_pb.ts";
import { commandLine, iso, jobDetails, type JobSummary, summarizeJob } from "./job_format.ts";

/** The JSON shape of one schedule. */
export interface ScheduleJson {
  readonly name: string;
  readonly cron: string;
  /** IANA zone the cron expression is read in; "UTC" when none was given. */
  readonly timeZone: string;
  readonly overlap: string;
  readonly catchUp: string;
  readonly queue: string;
  readonly paused: boolean;
  readonly owner: string;
  readonly created: string | null;
  readonly updated: string | null;
  /** The last firing the schedulers handled (its creation, before the first). */
  readonly lastFiringAt: string | null;
  /** The job of the last firing that made one; null before the first. */
  readonly lastJobId: string | null;
  /** The next firings (5 from get and add, 1 from list); empty while paused. */
  readonly nextFirings: string[];
  /** The job each firing makes, as `get --json` shows a job's parameters. */
  readonly job: ScheduleJobJson;
}

/** The parameters of a schedule's job. */
export type ScheduleJobJson = Pick<
  ReturnType<typeof jobDetails>,
  | "command"
  | "args"
  | "owner"
  | "repository"
  | "branch"
  | "commit"
  | "workingDirectory"
  | "processType"
  | "timeoutSeconds"
  | "environment"
  | "secretEnvironment"
  | "metadata"
  | "priority"
  | "retry"
>;

/** `schedule get --json`: the schedule and its latest jobs. */
export interface ScheduleDetailsJson extends ScheduleJson {
  /** Newest first, at most 10. */
  readonly recentJobs: JobSummary[];
}

/** A Job holding only `schedule`'s job parameters, for the job formatters. */
function jobOf(schedule: Schedule): Job {
  return { jobParams: schedule.jobParams, queue: schedule.queue, attempts: [] } as unknown as Job;
}

/** The JSON of `schedule`; environment values masked unless `showEnv`. */
export function scheduleJson(schedule: Schedule, showEnv = false): ScheduleJson {
  const d = jobDetails(jobOf(schedule), showEnv);
  return {
    name: schedule.name,
    cron: schedule.cron,
    timeZone: schedule.timeZone || "UTC",
    overlap: schedule.overlap,
    catchUp: schedule.catchUp,
    queue: schedule.queue,
    paused: schedule.paused,
    owner: schedule.owner,
    created: iso(schedule.createdAt),
    updated: iso(schedule.updatedAt),
    lastFiringAt: iso(schedule.lastFiringAt),
    lastJobId: schedule.lastJobId || null,
    nextFirings: schedule.nextFirings.map((t) => iso(t)!),
    job: {
      command: d.command,
      args: d.args,
      owner: d.owner,
      repository: d.repository,
      branch: d.branch,
      commit: d.commit,
      workingDirectory: d.workingDirectory,
      processType: d.processType,
      timeoutSeconds: d.timeoutSeconds,
      environment: d.environment,
      secretEnvironment: d.secretEnvironment,
      metadata: d.metadata,
      priority: d.priority,
      retry: d.retry,
    },
  };
}

/** `schedule get --json`. */
export function scheduleDetailsJson(
  schedule: Schedule,
  recentJobs: readonly Job[],
  showEnv: boolean,
): ScheduleDetailsJson {
  return { ...scheduleJson(schedule, showEnv), recentJobs: recentJobs.map(summarizeJob) };
}

const MAX_COMMAND_COLUMN = 40;

/** `schedule list`'s table, a header row and one row per schedule. */
export function formatScheduleTable(schedules: readonly Schedule[]): string {
  const rows = [["NAME", "CRON", "TIME ZONE", "QUEUE", "STATE", "NEXT", "LAST JOB", "COMMAND"]];
  for (const s of schedules) {
    const command = commandLine(jobOf(s));
    rows.push([
      s.name,
      s.cron,
      s.timeZone || "UTC",
      s.queue,
      s.paused ? "paused" : "active",
      iso(s.nextFirings[0]) ?? "-",
      s.lastJobId || "-",
      command.length > MAX_COMMAND_COLUMN
        ? `${command.slice(0, MAX_COMMAND_COLUMN - 1)}…`
        : command,
    ]);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd())
    .join("\n");
}

/** `schedule get`'s view: one "name: value" line per fact, its next firings and latest jobs. */
export function describeSchedule(
  schedule: Schedule,
  recentJobs: readonly Job[],
  showEnv: boolean,
): string {
  const d = scheduleJson(schedule, showEnv);
  const lines: [string, string][] = [
    ["name", d.name],
    ["cron", `${d.cron} (${d.timeZone})`],
    ["state", d.paused ? "paused" : "active"],
    ["queue", d.queue],
    ["command", d.job.command],
    ["overlap", d.overlap],
    ["catch-up", d.catchUp],
    ["owner", d.owner || "-"],
    ["created", d.created ?? "-"],
    ["last firing", d.lastFiringAt ?? "-"],
  ];
  if (d.job.priority !== 0) lines.push(["priority", String(d.job.priority)]);
  if (d.job.timeoutSeconds > 0) lines.push(["timeout", `${d.job.timeoutSeconds}s`]);
  for (const [k, v] of Object.entries(d.job.environment)) lines.push(["env", `${k}=${v}`]);
  for (const [k, v] of Object.entries(d.job.secretEnvironment)) lines.push(["secret", `${k}=${v}`]);
  for (const [k, v] of Object.entries(d.job.metadata)) lines.push(["metadata", `${k}=${v}`]);
  if (d.nextFirings.length === 0) lines.push(["next", d.paused ? "- (paused)" : "-"]);
  for (const at of d.nextFirings) lines.push(["next", at]);
  if (recentJobs.length === 0) lines.push(["job", "- (none yet)"]);
  for (const job of recentJobs) {
    const s = summarizeJob(job);
    const exit = s.exitCode === null ? "" : ` exit ${s.exitCode}`;
    lines.push(["job", `${s.id}  ${s.state}${exit}  ${s.created ?? ""}`]);
  }
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  return lines.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`).join("\n");
}
