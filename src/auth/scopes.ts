/**
 * What each token scope may call. `submit` is for people and scripts that
 * run jobs and watch them, `worker` for the machines that execute them,
 * `admin` for both. An RPC missing from the table needs `admin`, so a new
 * procedure is closed until someone decides who may call it.
 *
 * @module
 */
import { JobEventsService, JobService, ScheduleService } from "../../gen/job/v1/job_pb.ts";

/** The scopes a token can carry. */
export const SCOPES = ["submit", "worker", "admin"] as const;
export type Scope = typeof SCOPES[number];

/** Whether `value` names a scope. */
export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** The scope each procedure needs ("package.Service/Method" → scope); admin covers all. */
export const SCOPE_OF_PROCEDURE: ReadonlyMap<string, Exclude<Scope, "admin">> = new Map([
  [procedureName(JobService.typeName, JobService.method.enqueueJob.name), "submit"],
  [procedureName(JobService.typeName, JobService.method.enqueueJobs.name), "submit"],
  [procedureName(JobService.typeName, JobService.method.getJob.name), "submit"],
  [procedureName(JobService.typeName, JobService.method.listJobs.name), "submit"],
  [procedureName(JobService.typeName, JobService.method.cancelJob.name), "submit"],
  [procedureName(JobService.typeName, JobService.method.redriveJobs.name), "submit"],
  [procedureName(JobService.typeName, JobService.method.rerunJob.name), "submit"],
  [
    procedureName(JobEventsService.typeName, JobEventsService.method.streamJobEvents.name),
    "submit",
  ],
  // Reads and creation are open to submit; managing another owner's
  // schedule needs admin, which ScheduleService checks (it knows the owner).
  ...Object.values(ScheduleService.method).map((method) =>
    [procedureName(ScheduleService.typeName, method.name), "submit"] as const
  ),
  [procedureName(JobService.typeName, JobService.method.dequeueJob.name), "worker"],
  [procedureName(JobService.typeName, JobService.method.workerSession.name), "worker"],
  [procedureName(JobService.typeName, JobService.method.updateJob.name), "worker"],
  [procedureName(JobService.typeName, JobService.method.completeJob.name), "worker"],
  [
    procedureName(JobEventsService.typeName, JobEventsService.method.publishJobEvents.name),
    "worker",
  ],
]);

/** "job.v1.JobService/EnqueueJob" from its parts. */
export function procedureName(serviceTypeName: string, methodName: string): string {
  return `${serviceTypeName}/${methodName}`;
}

/** The scope `procedure` needs: its entry in the table, or admin when it has none. */
export function requiredScope(procedure: string): Scope {
  return SCOPE_OF_PROCEDURE.get(procedure) ?? "admin";
}

/** Whether a caller holding `scopes` may call `procedure`. */
export function scopesAllow(scopes: readonly Scope[], procedure: string): boolean {
  const needed = requiredScope(procedure);
  return scopes.includes("admin") || scopes.includes(needed);
}
