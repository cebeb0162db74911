/**
 * `airunner submit`: enqueue a job, print its id, and optionally follow it
 * to its end and exit with its exit code.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { Command, Option } from "@commander-js/extra-typings";
import { type JobParams, JobParamsSchema } from "../../gen/job/v1/job_pb.ts";
import { type AirunnerClients, createAirunnerClients } from "../client/transport.ts";
import { type ExitCodeSink, queueOption, serverOption } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { followJobToExitCode } from "./follow_job.ts";
import { writeOutput } from "./output.ts";
import { MAX_TIMEOUT_SECONDS } from "../server/limits.ts";
import { validateQueueName, validateRequestId } from "../server/request_validation.ts";
import { parseDurationMs, parseKeyValues, usageChecked, UsageError } from "./parse.ts";

/** What `submit` sends, once the command line is parsed. */
export interface SubmitConfig {
  readonly serverUrl: string;
  readonly queue: string;
  readonly requestId: string;
  readonly params: JobParams;
  readonly follow: boolean;
}

/** Builds the `submit` command. `trailing` holds the words after `--`, if any. */
export function submitCommand(setExitCode: ExitCodeSink, trailing: () => string[] | undefined) {
  return new Command("submit")
    .description(
      "submit a job; prints its id (with --follow, streams its output and exits with its code)",
    )
    .usage("[options] [REPOSITORY] [-- COMMAND [ARG...]]")
    .argument("[repository]", "git repository the worker checks out and runs the command in")
    .addOption(serverOption())
    .addOption(queueOption())
    .option("--command <command>", "command to run (instead of the words after --)")
    .option("--arg <arg>", "argument of --command (repeatable)", collect, [] as string[])
    .option(
      "--env <KEY=VALUE>",
      "environment variable for the job (repeatable)",
      collect,
      [] as string[],
    )
    .option("--workdir <dir>", "working directory of the job")
    .addOption(new Option("--timeout <duration>", "stop the job after this long (e.g. 90s, 5m)"))
    .option("--request-id <id>", "idempotency key: repeating a submit with it returns the same job")
    .option("--branch <branch>", "branch to check out (default: the repository's default)")
    .option("--commit <commit>", "commit to check out (wins over --branch)")
    .option("--follow", "stream the job's output and exit with its exit code", false)
    .addHelpText(
      "after",
      `
Examples:
  airunner submit -- make test
  id=$(airunner submit --queue builds -- ./build.sh)
  airunner submit --follow -- sh -c 'echo out; echo err >&2; exit 3'; echo "exit $?"

Exit codes with --follow: the job's own exit code; 124 job timed out;
125 airunner failed (server unreachable); 126 command could not start;
127 command not found; 130 job cancelled, or Ctrl-C (the job keeps running);
2 usage error.`,
    )
    .action(async (repository, opts) => {
      try {
        const config = parseSubmitConfig(repository, opts, trailing());
        setExitCode(
          await runSubmit(config, createAirunnerClients({ serverUrl: config.serverUrl })),
        );
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Turns submit's flags and trailing words into what to send. */
export function parseSubmitConfig(
  repository: string | undefined,
  opts: {
    server: string;
    queue: string;
    command?: string;
    arg: string[];
    env: string[];
    workdir?: string;
    timeout?: string;
    requestId?: string;
    branch?: string;
    commit?: string;
    follow: boolean;
  },
  trailing: string[] | undefined,
): SubmitConfig {
  let command: string;
  let args: string[];
  if (trailing !== undefined && trailing.length > 0) {
    if (opts.command !== undefined || opts.arg.length > 0) {
      throw new UsageError("give the command either after -- or with --command/--arg, not both");
    }
    [command, ...args] = trailing as [string, ...string[]];
  } else if (opts.command !== undefined) {
    command = opts.command;
    args = opts.arg;
  } else {
    throw new UsageError(
      'nothing to run: put the command after "--" (airunner submit -- make test) or use --command',
    );
  }
  if (command.trim() === "") throw new UsageError("the command is empty");
  const timeoutMs = opts.timeout === undefined ? 0 : parseDurationMs(opts.timeout, "--timeout");
  if (timeoutMs % 1000 !== 0 || timeoutMs > MAX_TIMEOUT_SECONDS * 1000) {
    throw new UsageError(
      `--timeout: must be whole seconds, at most ${
        MAX_TIMEOUT_SECONDS / 86_400
      } days (0 means no timeout)`,
    );
  }
  const queue = usageChecked(() => validateQueueName(opts.queue, "--queue"));
  if (opts.requestId !== undefined) {
    if (opts.requestId === "") throw new UsageError("--request-id: must not be empty");
    usageChecked(() => validateRequestId(opts.requestId!));
  }
  return {
    serverUrl: opts.server,
    queue,
    requestId: opts.requestId ?? "",
    follow: opts.follow,
    params: create(JobParamsSchema, {
      command,
      args,
      environment: parseKeyValues(opts.env, "--env"),
      repository: repository ?? "",
      branch: opts.branch ?? "",
      commit: opts.commit ?? "",
      workingDirectory: opts.workdir ?? "",
      timeoutSeconds: timeoutMs / 1000,
      owner: Deno.env.get("USER") ?? Deno.env.get("USERNAME") ?? "",
    }),
  };
}

/** Submits (and follows); returns the exit code. */
export async function runSubmit(config: SubmitConfig, clients: AirunnerClients): Promise<number> {
  const { jobId } = await clients.jobs.enqueueJob({
    requestId: config.requestId,
    queue: config.queue,
    jobParams: config.params,
  });
  if (!config.follow) {
    console.log(jobId);
    return 0;
  }
  console.error(`airunner: job ${jobId} submitted to queue "${config.queue}"`);
  return await followJobToExitCode(clients, jobId, { onEvent: writeOutput, explainFailure: true });
}
