/**
 * `airunner redrive`: put dead letters (FAILED jobs that used every
 * attempt: failure reason `exhausted` or `worker_lost`) back in their
 * queue with a fresh retry budget. Each keeps its id, attempts and output;
 * its next attempt numbers after the old ones. Prints each id put back.
 *
 * @module
 */
import type { RedriveJobsRequest } from "../../gen/job/v1/job_pb.ts";
import { MAX_REDRIVE_JOBS } from "../protocol/limits.ts";
import { validateRedriveRequest } from "../protocol/request_validation.ts";
import type { CommandContext } from "./command_index.ts";
import type { CommandSpec } from "./command_spec.ts";
import { CLIENT_OPTIONS, type ClientCommandFlags, clientsFrom } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { summarizeJob } from "./job_format.ts";
import { parseDurationMs, parseInteger, parseKeyValues, usageChecked } from "./parse.ts";

/** The flags of `redrive`, as its spec parses them. */
export interface RedriveFlags extends ClientCommandFlags {
  readonly queue?: string;
  readonly since?: string;
  readonly metadata: readonly string[];
  readonly exitCode: readonly string[];
  readonly dryRun: boolean;
  readonly json: boolean;
}

/** The `redrive` command. */
export function redriveSpec({ setExitCode }: CommandContext): CommandSpec {
  return {
    name: "redrive",
    description: "put failed jobs that used every attempt back in their queue; prints each id",
    arguments: [],
    options: [
      ...CLIENT_OPTIONS,
      { flags: "--queue <name>", description: "only jobs of this queue (default: every queue)" },
      {
        flags: "--since <duration>",
        description: "only jobs that failed in the last DURATION (e.g. 2h)",
      },
      {
        flags: "--metadata <KEY=VALUE>",
        description: "only jobs with this metadata (repeatable: all must match)",
        repeatable: true,
        defaultValue: [],
      },
      {
        flags: "--exit-code <n>",
        description: "only jobs whose last attempt exited with N (repeatable: any may match)",
        repeatable: true,
        defaultValue: [],
      },
      {
        flags: "--dry-run",
        description: "print the jobs that would go back; change nothing",
        defaultValue: false,
      },
      {
        flags: "--json",
        description: "print a JSON list of the jobs (state as before, with --dry-run)",
        defaultValue: false,
      },
    ],
    helpAfter: `
A job is redriven when it ended FAILED after using every attempt its retry
policy allows (failure reason exhausted, or worker_lost). It goes back as
SCHEDULED, due at once, with its retry budget renewed; its id, attempts and
output stay. A job that failed without a retry applying (exit 127, or no
retries) is not a dead letter: rerun it instead (airunner rerun ID). At most
${MAX_REDRIVE_JOBS} jobs go back per call, the oldest first; run it again for more.

Examples:
  airunner redrive --dry-run
  airunner redrive --queue builds --since 2h --exit-code 1
  airunner redrive --metadata team=web --json | jq -r '.[].id'`,
    run: async ({ opts }) => {
      const flags = opts as unknown as RedriveFlags;
      try {
        const request = redriveRequestOf(flags, Date.now());
        const clients = await clientsFrom({ ...flags, callTimeout: flags.timeout });
        const { jobs } = await clients.jobs.redriveJobs(request);
        if (flags.json) {
          console.log(JSON.stringify(jobs.map(summarizeJob), null, 2));
        } else {
          for (const job of jobs) console.log(job.jobId);
        }
        const verb = flags.dryRun ? "would go back (dry run)" : "went back to their queues";
        console.error(`airunner: ${jobs.length} job(s) ${verb}`);
        if (jobs.length >= MAX_REDRIVE_JOBS) {
          console.error(
            `airunner: ${MAX_REDRIVE_JOBS} is the most one call takes; run it again for more`,
          );
        }
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error, flags.server));
      }
    },
  };
}

/** The request the flags ask for, checked by the server's rules (pure: `nowMs` is given). */
export function redriveRequestOf(
  flags: Omit<RedriveFlags, keyof ClientCommandFlags>,
  nowMs: number,
): RedriveJobsRequest {
  const afterMs = flags.since === undefined
    ? undefined
    : nowMs - parseDurationMs(flags.since, "--since");
  const request: RedriveJobsRequest = {
    $typeName: "job.v1.RedriveJobsRequest",
    queue: flags.queue ?? "",
    ...(afterMs === undefined ? {} : {
      finishedAfter: {
        $typeName: "google.protobuf.Timestamp",
        seconds: BigInt(Math.floor(afterMs / 1000)),
        nanos: (afterMs % 1000) * 1_000_000,
      },
    }),
    metadata: parseKeyValues(flags.metadata, "--metadata"),
    exitCodes: flags.exitCode.map((code) => parseInteger(code, "--exit-code", 0, 255)),
    dryRun: flags.dryRun,
  };
  usageChecked(() => validateRedriveRequest(request));
  return request;
}
