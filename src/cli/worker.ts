/**
 * `airunner worker`: run jobs from one queue or several (the first preferred)
 * until SIGINT/SIGTERM.
 *
 * @module
 */
import { registerAllMetrics } from "../telemetry/metrics.ts";
import { Command, Option } from "@commander-js/extra-typings";
import { join, resolve } from "node:path";
import { systemClock } from "../clock.ts";
import { createAirunnerClients, parseServerUrl } from "../protocol/transport.ts";
import { createLogger, type Logger, type LogLevel } from "../logger.ts";
import { validateQueueName, validateWorkerName } from "../protocol/request_validation.ts";
import { MAX_SESSION_CREDITS, MAX_SESSION_QUEUES } from "../protocol/session.ts";
import { type RunningWorker, startWorker } from "../worker/worker.ts";
import { createRpcWorkerApi, type WorkerApi } from "../worker/worker_api.ts";
import { createSessionWorkerApi, type WorkerProtocol } from "../worker/session_worker_api.ts";
import { effectiveUid, prepareRunAs, RunAsError, type RunAsUser } from "../worker/run_as.ts";
import { secureWorkspaceRoot } from "../worker/root_ownership.ts";
import { type ExitCodeSink, readCaCert } from "./common_options.ts";
import { caCertOption, logLevelOption, serverOption, tokenOption } from "./commander_options.ts";
import { reportError } from "./errors.ts";
import { parseDurationMs, parseInteger, usageChecked, UsageError } from "./parse.ts";
import { onShutdownSignals } from "./shutdown_signals.ts";

/** Settings of a worker. */
export interface WorkerConfig {
  readonly serverUrl: string;
  /** The queues to take jobs from, in order of preference (`--queue`). */
  readonly queues: readonly string[];
  readonly concurrency: number;
  readonly visibilityTimeoutSeconds: number;
  readonly shutdownGraceMs: number;
  readonly workspaceRoot: string;
  readonly keepWorkspaces: boolean;
  /** How the worker talks to the server (see {@link protocolOption}). */
  readonly protocol: WorkerProtocol;
  /** API token (scope worker or admin) sent with every call. */
  readonly token?: string | undefined;
  /** PEM of a private CA to trust for an https:// server. */
  readonly caCertPem?: string | undefined;
  /** Run jobs as this user (`--run-as`); the worker must be root. */
  readonly runAs?: string | undefined;
  /** The name the server records in this worker's attempts (`--name`). */
  readonly workerName: string;
}

/** The worker settings `airunner worker` uses unless told otherwise. */
export const WORKER_DEFAULTS = {
  concurrency: "1",
  visibilityTimeout: "60s",
  shutdownGrace: "30s",
} as const;

/** Builds the `worker` command. */
export function workerCommand(setExitCode: ExitCodeSink) {
  return new Command("worker")
    .description("run jobs from a queue, or from several in order of preference")
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caCertOption())
    .addOption(workerQueueOption("queue to take jobs from"))
    .addOption(
      new Option("--concurrency <n>", "jobs run at once").env("AIRUNNER_CONCURRENCY")
        .default(WORKER_DEFAULTS.concurrency),
    )
    .addOption(
      new Option("--visibility-timeout <duration>", "lease length; extended at a third of it")
        .default(WORKER_DEFAULTS.visibilityTimeout),
    )
    .addOption(
      new Option("--shutdown-grace <duration>", "time running jobs get to finish on shutdown")
        .default(WORKER_DEFAULTS.shutdownGrace),
    )
    .addOption(
      new Option("--workspace-root <dir>", "where jobs' repositories are checked out")
        .env("AIRUNNER_WORKSPACE_ROOT").default(defaultWorkspaceRoot()),
    )
    .option("--keep-workspaces", "leave each job's checkout in place after the job", false)
    .addOption(workerNameOption())
    .addOption(runAsOption())
    .addOption(protocolOption())
    .addOption(logLevelOption())
    .addHelpText(
      "after",
      "\nExamples:\n  airunner worker --server http://127.0.0.1:8080 --queue default\n  airunner worker --queue build --queue test   # build's jobs first when both have some\n  sudo airunner worker --run-as ci --workspace-root /srv/airunner   # jobs run as user ci",
    )
    .action(async (opts, command) => {
      try {
        const config = {
          ...parseWorkerConfig(opts),
          token: opts.token,
          caCertPem: await readCaCert(opts.caCert),
        };
        if (opts.runAs !== undefined && command.getOptionValueSource("token") === "cli") {
          // Jobs as another user cannot read the worker's environment, but anyone reads its argv.
          console.error(
            "airunner: warning: --token on the command line is visible to every user of this host (ps), jobs included; pass it in AIRUNNER_TOKEN",
          );
        }
        setExitCode(await runWorker(config, createLogger({ level: opts.logLevel as LogLevel })));
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}

/** Turns worker flags into settings. */
export function parseWorkerConfig(opts: {
  server: string;
  /** One `--queue` value or several, each a name or a comma-separated list. */
  queue: string | readonly string[];
  concurrency: string;
  visibilityTimeout: string;
  shutdownGrace: string;
  workspaceRoot: string;
  keepWorkspaces: boolean;
  protocol: string;
  runAs?: string | undefined;
  name?: string | undefined;
}): WorkerConfig {
  const queues = parseWorkerQueues(opts.queue);
  const visibilityMs = parseDurationMs(opts.visibilityTimeout, "--visibility-timeout");
  if (visibilityMs < 1000 || visibilityMs > 43_200_000) {
    throw new UsageError("--visibility-timeout: must be between 1s and 12h");
  }
  return {
    serverUrl: parseServerUrl(opts.server),
    queues,
    concurrency: parseInteger(opts.concurrency, "--concurrency", 1, MAX_SESSION_CREDITS),
    visibilityTimeoutSeconds: Math.round(visibilityMs / 1000),
    shutdownGraceMs: parseDurationMs(opts.shutdownGrace, "--shutdown-grace"),
    // Once, here: every later use (git's cwd included) sees the same directory.
    workspaceRoot: resolve(opts.workspaceRoot),
    keepWorkspaces: opts.keepWorkspaces,
    protocol: opts.protocol as WorkerProtocol,
    ...(opts.runAs === undefined ? {} : { runAs: opts.runAs }),
    workerName: usageChecked(() => validateWorkerName(opts.name ?? defaultWorkerName(), "--name")),
  };
}

/** `--queue` when it is not given: the queue `submit` uses by default. */
const DEFAULT_QUEUES: readonly string[] = Object.freeze(["default"]);

/**
 * `--queue NAME`, repeatable, each value one name or several separated by
 * commas (so `AIRUNNER_QUEUE=build,test` works too): the queues in order of
 * preference. Its value is the raw list; {@link parseWorkerQueues} checks it.
 */
export function workerQueueOption(description: string) {
  return new Option(
    "--queue <name>",
    `${description}; repeat it or separate names with commas to serve several, the first preferred`,
  ).env("AIRUNNER_QUEUE").default(DEFAULT_QUEUES, '"default"').argParser(
    (value: string, previous: readonly string[]): readonly string[] =>
      previous === DEFAULT_QUEUES ? [value] : [...previous, value],
  );
}

/**
 * The queues of `--queue` values, in the order given: each value a name or
 * comma-separated names; every name valid, none twice, at most
 * MAX_SESSION_QUEUES.
 * @throws {UsageError} naming the value that is wrong.
 */
export function parseWorkerQueues(values: string | readonly string[]): string[] {
  const names = (typeof values === "string" ? [values] : values).flatMap((value) => {
    const split = value.split(",").map((name) => name.trim());
    if (split.length > 1 && split.includes("")) {
      throw new UsageError(`--queue: "${value}" has an empty queue name`);
    }
    return split;
  });
  if (names.length > MAX_SESSION_QUEUES) {
    throw new UsageError(
      `--queue: ${names.length} queues, more than the limit of ${MAX_SESSION_QUEUES}`,
    );
  }
  names.forEach((name, i) => {
    usageChecked(() => validateQueueName(name, "--queue"));
    if (names.indexOf(name) < i) throw new UsageError(`--queue: "${name}" is given twice`);
  });
  return names;
}

/** How a worker's queues read in messages: `"build"`, or `"build", "test"`. */
export function describeQueues(queues: readonly string[]): string {
  return `queue${queues.length === 1 ? "" : "s"} ${queues.map((q) => `"${q}"`).join(", ")}`;
}

/** A worker's name when it is given none: its host and process id. */
export function defaultWorkerName(): string {
  return `${Deno.hostname()}:${Deno.pid}`;
}

/** `--name NAME`: how this worker appears in the attempts it runs (`get` lists them). */
export function workerNameOption() {
  return new Option("--name <name>", "this worker's name in the jobs' attempts (default: host:pid)")
    .env("AIRUNNER_WORKER_NAME");
}

/**
 * `--run-as USER`: run each job as USER (uid, gid and groups, HOME in its
 * workspace), so that it cannot read the worker's token, environment or
 * files. Only a worker started as root can; Linux only.
 */
export function runAsOption() {
  return new Option(
    "--run-as <user>",
    "run each job as this user, with HOME in its workspace (the worker must run as root; Linux)",
  ).env("AIRUNNER_RUN_AS");
}

/**
 * Who jobs will run as: the `--run-as` user, checked and with the workspace
 * root readied for it; or, without the flag, nobody else, said once when
 * that means root. The workspace root is made, or checked to be the
 * worker's own, first.
 * @throws {UsageError} when jobs cannot run as the user asked for.
 * @throws {WorkspaceRootError} when the workspace root is someone else's.
 */
export async function jobUserFor(
  config: Pick<WorkerConfig, "runAs" | "workspaceRoot">,
  logger: Logger,
): Promise<RunAsUser | undefined> {
  const uid = await effectiveUid();
  await secureWorkspaceRoot(config.workspaceRoot, uid);
  if (config.runAs === undefined) {
    if (uid === 0) {
      logger.warn(
        "the worker runs as root, so its jobs run as root; start it with --run-as USER to run them as another user",
      );
      console.error(
        "airunner: warning: jobs run as root and can read the worker's token and files; pass --run-as USER to run them as another user",
      );
    }
    return undefined;
  }
  try {
    return await prepareRunAs(config.runAs, config.workspaceRoot);
  } catch (error) {
    if (error instanceof RunAsError) throw new UsageError(error.message);
    throw error;
  }
}

/**
 * `--protocol`: `auto` (the default) holds one streaming session with the
 * server and falls back to unary calls when the way to the server cannot
 * stream both ways (HTTP/1.1); `session` insists on the session; `unary`
 * makes one call per operation, as workers before the session did.
 */
export function protocolOption() {
  return new Option(
    "--protocol <protocol>",
    "how to talk to the server: a streaming session (falling back to unary calls over HTTP/1.1), or unary calls only",
  ).choices(["auto", "session", "unary"] as const).env("AIRUNNER_WORKER_PROTOCOL").default(
    "auto" as const,
  );
}

/** The default workspace root: airunner-workspaces in the system's temporary directory. */
export function defaultWorkspaceRoot(): string {
  const tmp = Deno.env.get("TMPDIR") ?? Deno.env.get("TEMP") ?? Deno.env.get("TMP") ??
    (Deno.build.os === "windows" ? "C:\\Windows\\Temp" : "/tmp");
  return join(tmp, "airunner-workspaces");
}

/** Runs a worker until a shutdown signal and its jobs' grace have passed. */
export async function runWorker(config: WorkerConfig, logger: Logger): Promise<number> {
  const runAs = await jobUserFor(config, logger);
  const worker = startWorkerFor(config, logger, runAs);
  console.error(
    `airunner: worker taking jobs from ${describeQueues(config.queues)} at ${config.serverUrl}${
      runAs === undefined ? "" : `; jobs run as ${runAs.name} (uid ${runAs.uid})`
    }`,
  );
  const unsubscribe = onShutdownSignals(...shutdownSteps([worker], config.shutdownGraceMs));
  await worker.finished;
  unsubscribe();
  return 0;
}

/**
 * What Ctrl-C does to workers: first let running jobs finish (up to the
 * grace), then stop them and hand them back, then exit at once.
 */
export function shutdownSteps(workers: RunningWorker[], graceMs: number): (() => void)[] {
  const running = () => workers.reduce((n, w) => n + w.runningJobs, 0);
  return [
    () => {
      const jobs = running();
      console.error(
        jobs === 0
          ? "airunner: stopping"
          : `airunner: stopping; ${jobs} running job(s) get up to ${
            Math.round(graceMs / 1000)
          }s to finish (Ctrl-C again stops them now and hands them back)`,
      );
      for (const worker of workers) worker.shutdown();
    },
    () => {
      console.error(
        "airunner: stopping running jobs now and handing them back (Ctrl-C again exits at once)",
      );
      for (const worker of workers) worker.stopNow();
    },
    () => Deno.exit(130),
  ];
}

/** Starts a worker connected over RPC to `config.serverUrl`. */
export function startWorkerFor(config: WorkerConfig, logger: Logger, runAs?: RunAsUser) {
  registerAllMetrics();
  return startWorker({
    api: workerApiFor(config, logger),
    queues: config.queues,
    concurrency: config.concurrency,
    clock: systemClock,
    logger,
    baseEnv: Deno.env.toObject(),
    visibilityTimeoutSeconds: config.visibilityTimeoutSeconds,
    killGraceMs: 5_000,
    shutdownGraceMs: config.shutdownGraceMs,
    workspaceRoot: config.workspaceRoot,
    keepWorkspaces: config.keepWorkspaces,
    ...(runAs === undefined ? {} : { runAs }),
  });
}

/** The WorkerApi `config.protocol` asks for. */
export function workerApiFor(config: WorkerConfig, logger: Logger): WorkerApi {
  const connection = {
    serverUrl: config.serverUrl,
    ...(config.token === undefined ? {} : { token: config.token }),
    ...(config.caCertPem === undefined ? {} : { caCertPem: config.caCertPem }),
  };
  const unary = createRpcWorkerApi(
    createAirunnerClients({ ...connection, bufferRequestStreams: true }),
    config.workerName,
  );
  if (config.protocol === "unary") return unary;
  return createSessionWorkerApi({
    connection,
    unary,
    mode: config.protocol,
    clock: systemClock,
    logger,
    workerName: config.workerName,
  });
}
