/**
 * `airunner submit`: enqueue a job, print its id, and optionally follow it
 * (or wait for it) to its end and exit with its exit code.
 *
 * Where each setting comes from, first match wins: the command line (flags,
 * `--`), AIRUNNER_* environment variables, the `--config` job file, the
 * defaults. `--env`, `--secret-env` and `--metadata` entries override the
 * file's entries key by key; `--env-file` sits between the file and `--env`.
 *
 * `--batch FILE` submits one job per line instead (see batch_submit.ts),
 * where the flags are defaults and each line's own keys win.
 *
 * @module
 */
import type { Job, JobParams, JobState } from "../../gen/job/v1/job_pb.ts";
import type { CliClients } from "../client/json_client.ts";
import { validateQueueName, validateRequestId } from "../protocol/request_validation.ts";
import type { CommandContext } from "./command_index.ts";
import type { CommandSpec, OptionSpec } from "./command_spec.ts";
import {
  CA_CERT_OPTION,
  type ClientFlags,
  clientsFrom,
  SERVER_OPTION,
  SUBMIT_CALL_TIMEOUT_OPTION,
  TOKEN_OPTION,
} from "./common_options.ts";
import { reportError } from "./errors.ts";
import { iso } from "./job_format.ts";
import { EXIT_CODES_HELP } from "./exit_codes.ts";
import { followJobToOutcome } from "./follow_job.ts";
import { checkTimeoutSeconds, type JobFile, parseEnvFile, parseTimeoutFlag } from "./job_fields.ts";
import {
  checkedCheckoutFlags,
  jobParamsOf,
  type JobSpec,
  mergeJobSpecs,
  type RetryFlags,
  retrySpecOf,
  type StartFlags,
  startSpecOf,
} from "./job_spec.ts";
import { jobStateName } from "./parse.ts";
import { writeOutput } from "./output.ts";
import { parseKeyValues, parseSecretEnvEntries, usageChecked, UsageError } from "./parse.ts";
import { checkStartTime } from "./start_flags.ts";
import { type DependencyFlags, dependencySpecOf } from "./dependency_flags.ts";
import { startNotBeforeMs } from "../protocol/timing_validation.ts";

/** What `submit` sends and does, once the command line is parsed. */
export interface SubmitConfig {
  readonly queue: string;
  readonly requestId: string;
  readonly params: JobParams;
  /** none: print the id; wait: wait for the end; follow: stream output until the end. */
  readonly mode: "none" | "wait" | "follow";
  readonly json: boolean;
  readonly cancelOnInterrupt: boolean;
}

/** The flags of `submit` (as commander parses them). */
export interface SubmitFlags extends RetryFlags, StartFlags, DependencyFlags {
  queue?: string;
  command?: string;
  arg: string[];
  env: string[];
  secretEnv: string[];
  envFile?: string;
  metadata: string[];
  owner?: string;
  workdir?: string;
  timeout?: string;
  processType?: "pipe" | "pty";
  requestId?: string;
  branch?: string;
  commit?: string;
  follow: boolean;
  wait: boolean;
  json: boolean;
  cancelOnInterrupt: boolean;
}

/** The retry options of `submit`, defaults for every line with `--batch`. */
const RETRY_OPTIONS: readonly OptionSpec[] = [
  {
    flags: "--retries <n>",
    description:
      "try a failed job again up to N times (0..100; default 0, or the server's --default-retries)",
  },
  {
    flags: "--retry-on <codes>",
    description: "exit codes that retry, such as 1,2,75-78 (default: any non-zero but 126 and 127)",
  },
  {
    flags: "--retry-delay <delay>",
    description: "first wait..longest wait between attempts, doubling with jitter (default 1s..5m)",
  },
  {
    flags: "--no-retry-on-timeout",
    description: "an attempt that timed out is not tried again",
  },
];

/** When and in what order the job runs (README "Scheduling"). */
const START_OPTIONS: readonly OptionSpec[] = [
  {
    flags: "--delay <duration>",
    description: "start no earlier than this long from now, such as 10m or 1h30m (at most 366d)",
  },
  {
    flags: "--at <time>",
    description: "start no earlier than this RFC 3339 time, such as 2026-12-24T09:00:00Z",
  },
  {
    flags: "--priority <n>",
    description: "higher runs first within the queue (-100..100; default 0)",
  },
];

/** How a command that makes a job waits for it: `--follow` or `--wait` (submit, schedule run). */
export const FOLLOW_OPTIONS: readonly OptionSpec[] = [
  {
    flags: "--follow",
    description: "stream the job's output, then exit with its exit code",
    defaultValue: false,
  },
  {
    flags: "--wait",
    description: "wait for the job to end, then exit with its exit code",
    defaultValue: false,
  },
];

/** What the job waits for (README "Dependencies"). */
const DEPENDENCY_OPTIONS: readonly OptionSpec[] = [
  {
    flags: "--after <ids>",
    description:
      "start once these jobs (ID[,ID...], repeatable) completed; cancelled if one fails or is cancelled",
    repeatable: true,
    defaultValue: [],
  },
  {
    flags: "--after-any <ids>",
    description: "start once these jobs (ID[,ID...], repeatable) ended, whatever their outcome",
    repeatable: true,
    defaultValue: [],
  },
];

/** The options of `submit`, in the order its help lists them. */
export const SUBMIT_OPTIONS: readonly OptionSpec[] = [
  SERVER_OPTION,
  TOKEN_OPTION,
  CA_CERT_OPTION,
  SUBMIT_CALL_TIMEOUT_OPTION,
  {
    flags: "--config <file>",
    description: "job file (YAML, or JSON by extension) with the job's settings",
  },
  {
    flags: "--batch <file>",
    description:
      "submit one job per line of FILE (JSON lines, - reads stdin); prints one id a line",
  },
  { flags: "--queue <name>", description: "queue (default: default)", env: "AIRUNNER_QUEUE" },
  { flags: "--command <command>", description: "command to run (instead of the words after --)" },
  {
    flags: "--arg <arg>",
    description: "argument of --command (repeatable)",
    repeatable: true,
    defaultValue: [],
  },
  {
    flags: "--env <KEY=VALUE>",
    description: "environment variable for the job (repeatable)",
    repeatable: true,
    defaultValue: [],
  },
  {
    flags: "--secret-env <NAME[=VAL]>",
    description:
      "secret environment variable (repeatable; NAME alone reads $NAME here): reaches the job, shown to nobody, masked as *** in its output",
    repeatable: true,
    defaultValue: [],
  },
  {
    flags: "--env-file <file>",
    description: "environment variables for the job, KEY=VALUE per line",
  },
  {
    flags: "--metadata <KEY=VALUE>",
    description: "metadata recorded with the job (repeatable)",
    repeatable: true,
    defaultValue: [],
  },
  { flags: "--owner <name>", description: "who the job is for (default: your user name)" },
  {
    flags: "--workdir <dir>",
    description: "working directory (relative to the checkout when there is a repository)",
  },
  {
    flags: "--timeout <duration>",
    description: "stop the job after this long (e.g. 90s, 5m; 0: no limit)",
  },
  {
    flags: "--process-type <type>",
    description: "run the command on pipes or a terminal",
    choices: ["pipe", "pty"],
  },
  ...RETRY_OPTIONS,
  ...START_OPTIONS,
  ...DEPENDENCY_OPTIONS,
  {
    flags: "--request-id <id>",
    description: "idempotency key: repeating a submit with it returns the same job",
  },
  {
    flags: "--branch <branch>",
    description: "branch to check out (default: the repository's default)",
  },
  { flags: "--commit <commit>", description: "commit to check out (wins over --branch)" },
  ...FOLLOW_OPTIONS,
  {
    flags: "--json",
    description:
      "print one JSON object instead of the id (job output then goes to stderr; one a line with --batch)",
    defaultValue: false,
  },
  {
    flags: "--cancel-on-interrupt",
    description: "Ctrl-C cancels the job instead of leaving it running",
    defaultValue: false,
  },
];

/** The `submit` command. The context's `trailing` holds the words after `--`, if any. */
export function submitSpec({ setExitCode, trailing }: CommandContext): CommandSpec {
  return {
    name: "submit",
    description:
      "submit a job; prints its id (--follow streams its output, --wait waits; both exit with its code)",
    usage: "[options] [REPOSITORY] [-- COMMAND [ARG...]]",
    arguments: [{
      name: "repository",
      description: "git repository the worker checks out and runs the command in",
      required: false,
    }],
    options: SUBMIT_OPTIONS,
    helpAfter: `
Examples:
  airunner submit -- make test
  id=$(airunner submit --queue builds -- ./build.sh)
  airunner submit --follow -- sh -c 'echo out; echo err >&2; exit 3'; echo "exit $?"
  airunner submit --config job.yaml --env CI=true --wait --json
  airunner submit --retries 3 --retry-on 1,75-78 --retry-delay 5s..10m --follow -- ./flaky.sh
  NPM_TOKEN=... airunner submit --secret-env NPM_TOKEN --follow -- npm publish
  seq 100 | xargs printf '{"command": "./shard.sh", "args": ["%s"]}\\n' | airunner submit --batch -

--batch FILE: each line is a JSON object with the keys of a --config job file
  (command, args, environment, secret_env, metadata, owner, repository,
  commit, branch, workingDirectory, processType, timeout, queue, retries,
  retryOn, retryDelay, retryOnTimeout, delay, at, priority, after, afterAny)
  plus request_id;
  blank lines and # comments are skipped. --queue, --owner, --env,
  --secret-env, --env-file, --metadata, --timeout, --process-type, --workdir,
  --branch, --commit, the retry flags, --delay, --at, --priority, --after,
  --after-any and
  REPOSITORY are defaults for every line: a line's own
  key wins (environment, secret_env and metadata key by key). The whole file
  is checked first (a bad line: exit 2, nothing sent). Prints the job ids in
  input order; a line the server refused prints nothing on stdout, its error
  goes to stderr and the exit code is 1, so scripts that pair ids with lines
  use --json: {"line": N, "job_id": ID, "created": true} or
  {"line": N, "error": MESSAGE}.

${EXIT_CODES_HELP}`,
    run: async ({ args: [repository], opts: parsed }) => {
      const opts = parsed as unknown as SubmitFlags & ClientFlags & {
        config?: string;
        batch?: string;
      };
      try {
        if (opts.batch !== undefined) {
          setExitCode(await submitBatch(repository, { ...opts, batch: opts.batch }, trailing()));
          return;
        }
        // The YAML parser loads only for a job file (see job_fields.ts).
        const file = opts.config === undefined
          ? {}
          : await (await import("./job_file.ts")).readJobFile(opts.config);
        const envFile = opts.envFile === undefined ? {} : await readEnvFile(opts.envFile);
        const config = parseSubmitConfig(repository, opts, trailing(), file, envFile);
        setExitCode(
          await runSubmit(
            config,
            // submit's --timeout is the job's; its call deadline is --call-timeout.
            await clientsFrom({ ...opts, callTimeout: opts.callTimeout }, "--call-timeout"),
          ),
        );
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    },
  };
}

/** `submit --batch`: checks the flags and the whole file, then sends it. */
async function submitBatch(
  repository: string | undefined,
  opts: SubmitFlags & ClientFlags & { config?: string; batch: string },
  trailing: string[] | undefined,
): Promise<number> {
  // Loaded only for --batch: a single submit's start-up skips it (about 7 ms).
  const { batchDefaults, checkBatchFlags, parseBatchLines, readBatchInput, runBatchSubmit } =
    await import("./batch_submit.ts");
  checkBatchFlags(opts, trailing);
  const envFile = opts.envFile === undefined ? {} : await readEnvFile(opts.envFile);
  const defaults = batchDefaults(
    repository,
    opts,
    envFile,
    localUserName(),
    (name) => Deno.env.get(name),
  );
  const jobs = parseBatchLines(await readBatchInput(opts.batch), defaults);
  const clients = await clientsFrom(opts, "--call-timeout");
  return await runBatchSubmit(jobs, clients, { json: opts.json, serverUrl: opts.server });
}

/** The entries of the `--env-file` at `path`. */
export async function readEnvFile(path: string): Promise<Record<string, string>> {
  try {
    return parseEnvFile(await Deno.readTextFile(path), path);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`--env-file: cannot read ${path}: ${(error as Error).message}`);
  }
}

/** Turns the command line, the job file and the env file into what to send (pure). */
export function parseSubmitConfig(
  repository: string | undefined,
  opts: SubmitFlags,
  trailing: string[] | undefined,
  file: JobFile = {},
  envFile: Record<string, string> = {},
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
  } else if (file.command !== undefined) {
    command = file.command;
    args = opts.arg.length > 0 ? opts.arg : file.args ?? [];
  } else {
    throw new UsageError(
      'nothing to run: put the command after "--" (airunner submit -- make test), use --command, or a --config file with command',
    );
  }
  if (command.trim() === "") throw new UsageError("the command is empty");
  if (opts.follow && opts.wait) throw new UsageError("choose --follow or --wait, not both");

  const timeoutSeconds = checkTimeoutSeconds(
    opts.timeout === undefined ? file.timeoutSeconds ?? 0 : parseTimeoutFlag(opts.timeout),
    "--timeout",
  );
  const queue = usageChecked(() =>
    validateQueueName(opts.queue ?? file.queue ?? "default", "--queue")
  );
  if (opts.requestId !== undefined) {
    if (opts.requestId === "") throw new UsageError("--request-id: must not be empty");
    usageChecked(() => validateRequestId(opts.requestId!));
  }
  const checkout = checkedCheckoutFlags(repository, opts);
  const flags: JobSpec = {
    command,
    args,
    environment: parseKeyValues(opts.env, "--env"),
    secretEnvironment: parseSecretEnvEntries(
      opts.secretEnv,
      "--secret-env",
      (name) => Deno.env.get(name),
    ),
    metadata: parseKeyValues(opts.metadata, "--metadata"),
    ...checkout,
    workingDirectory: opts.workdir,
    timeoutSeconds,
    processType: opts.processType,
    owner: opts.owner,
    ...retrySpecOf(opts),
    ...startSpecOf(opts),
    ...dependencySpecOf(opts),
  };
  const spec = mergeJobSpecs({ owner: localUserName() }, file, { environment: envFile }, flags);
  const params = jobParamsOf({ ...spec, command }, "--timeout");
  checkStartTime(
    params,
    opts.requestId ?? "",
    spec.start?.runAtMs === undefined ? "--delay" : "--at",
  );
  return {
    queue,
    requestId: opts.requestId ?? "",
    mode: opts.follow ? "follow" : opts.wait ? "wait" : "none",
    json: opts.json,
    cancelOnInterrupt: opts.cancelOnInterrupt,
    params,
  };
}

/** The name of the user running airunner, for a job's owner. */
export function localUserName(): string {
  return Deno.env.get("USER") ?? Deno.env.get("USERNAME") ?? Deno.env.get("LOGNAME") ?? "";
}

/** The JSON `submit --json` prints. */
export interface SubmitJson {
  readonly id: string;
  readonly queue: string;
  readonly state: string;
  readonly exitCode?: number | null;
  readonly startedAt?: string | null;
  readonly completedAt?: string | null;
  readonly error?: string | null;
}

/**
 * Submits (and follows or waits); returns the exit code. With telemetry on,
 * it all happens in one span whose context the job carries in its metadata,
 * so the worker's span and the job's process join the same trace.
 */
export async function runSubmit(config: SubmitConfig, clients: CliClients): Promise<number> {
  // Without Deno's OpenTelemetry no tracer is registered and the span would
  // be a no-op: submit then skips loading @opentelemetry/api (about 6 ms).
  if (!openTelemetryRegistered()) {
    return await submitAndFollow(config, config.params, clients, () => {});
  }
  const { currentTraceparent, inSpan, SpanKind, TRACEPARENT_METADATA_KEY } = await import(
    "../telemetry/tracing.ts"
  );
  return await inSpan("airunner submit", {
    kind: SpanKind.PRODUCER,
    attributes: { "airunner.queue": config.queue },
  }, async (span) => {
    const traceparent = currentTraceparent();
    const jobParams = traceparent === undefined ||
        config.params.metadata?.[TRACEPARENT_METADATA_KEY] !== undefined
      ? config.params
      : {
        ...config.params,
        metadata: { ...config.params.metadata, [TRACEPARENT_METADATA_KEY]: traceparent },
      };
    const exitCode = await submitAndFollow(
      config,
      jobParams,
      clients,
      (jobId) => span.setAttribute("airunner.job_id", jobId),
    );
    span.setAttribute("airunner.exit_code", exitCode);
    return exitCode;
  });
}

/**
 * Whether an OpenTelemetry API is registered in this process (Deno's own,
 * set up at start when OTEL_DENO is on, or a test's): where
 * `npm:@opentelemetry/api` 1.x keeps its global providers.
 */
function openTelemetryRegistered(): boolean {
  return (globalThis as Record<symbol, unknown>)[Symbol.for("opentelemetry.js.api.1")] !==
    undefined;
}

async function submitAndFollow(
  config: SubmitConfig,
  jobParams: SubmitConfig["params"],
  clients: CliClients,
  onJobId: (jobId: string) => void,
): Promise<number> {
  const { jobId, state } = await clients.jobs.enqueueJob({
    requestId: config.requestId,
    queue: config.queue,
    jobParams,
  });
  onJobId(jobId);
  const startsAtMs = startNotBeforeMs(jobParams, Date.now());
  return await reportSubmitted(
    clients,
    { jobId, queue: config.queue, state, ...(startsAtMs > 0 ? { startsAtMs } : {}) },
    config,
    "submitted",
  );
}

/** How a command that made a job (`submit`, `rerun`) reports it: print, wait or follow. */
export interface SubmittedReport {
  readonly mode: SubmitConfig["mode"];
  readonly json: boolean;
  readonly cancelOnInterrupt: boolean;
}

/**
 * Prints the new job's id (or its JSON), or follows or waits for it to its
 * end; returns the exit code (the job's, when followed).
 */
export async function reportSubmitted(
  clients: CliClients,
  job: {
    readonly jobId: string;
    readonly queue: string;
    readonly state: JobState;
    /** A delayed start's time (Unix ms), which the report says. */
    readonly startsAtMs?: number;
  },
  report: SubmittedReport,
  verb: string,
): Promise<number> {
  const { jobId, queue } = job;
  if (report.mode === "none") {
    console.log(
      report.json
        ? JSON.stringify({ id: jobId, queue, state: jobStateName(job.state) } satisfies SubmitJson)
        : jobId,
    );
    return 0;
  }
  if (!report.json) {
    const starts = job.startsAtMs === undefined
      ? ""
      : `; starts at ${new Date(job.startsAtMs).toISOString()}`;
    console.error(`airunner: job ${jobId} ${verb} to queue "${queue}"${starts}`);
  }
  const outcome = await followJobToOutcome(clients, jobId, {
    onEvent: report.mode === "follow" ? (e) => writeOutput(e, report.json) : () => {},
    explainFailure: !report.json,
    spinnerQueue: queue,
    ...(job.startsAtMs === undefined ? {} : { spinnerStartsAtMs: job.startsAtMs }),
    cancelOnInterrupt: report.cancelOnInterrupt,
    jobKnownToExist: true,
  });
  if (report.json) console.log(JSON.stringify(outcomeJson(jobId, queue, outcome.job)));
  return outcome.exitCode;
}

function outcomeJson(id: string, queue: string, job: Job | undefined): SubmitJson {
  return {
    id,
    queue,
    state: job === undefined ? "unknown" : jobStateName(job.state),
    exitCode: job?.result?.exitCode ?? null,
    startedAt: iso(job?.result?.startedAt),
    completedAt: iso(job?.result?.completedAt),
    error: job?.result?.errorMessage || null,
  };
}
