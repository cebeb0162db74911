/**
 * `airunner dev`: a server and workers in one process, on loopback only, for
 * one person on one machine.
 *
 * @module
 */
import { defaultRetryOptions, defaultRetryPolicyOf } from "./retry_default_options.ts";
import { Command, Option } from "@commander-js/extra-typings";
import { join } from "node:path";
import { createLogger, type LogLevel } from "../logger.ts";
import { defaultExecutionConfig } from "../server/execution_config.ts";
import { startServer } from "../server/http_server.ts";
import type { ExitCodeSink } from "./common_options.ts";
import { listenOption, logLevelOption } from "./commander_options.ts";
import { reportError } from "./errors.ts";
import { isLoopback, parseInteger, parseListenAddress, UsageError } from "./parse.ts";
import { listenOrExplain } from "./server.ts";
import {
  dataDirOption,
  DEV_DATA_DIR,
  maxJobOutputOption,
  parseStoreConfig,
  retentionOption,
  type StoreKind,
  storeKindOption,
} from "./store_options.ts";
import { openStore } from "./store_opener.ts";
import { onShutdownSignals } from "./shutdown_signals.ts";
import {
  defaultWorkspaceRoot,
  describeQueues,
  jobUserFor,
  parseWorkerConfig,
  parseWorkerQueues,
  protocolOption,
  runAsOption,
  shutdownSteps,
  startWorkerFor,
  WORKER_DEFAULTS,
  workerQueueOption,
} from "./worker.ts";

/** How long dev keeps serving after its workers stopped, for followers to read results. */
const FOLLOWER_LINGER_MS = 500;

/** Builds the `dev` command. */
export function devCommand(setExitCode: ExitCodeSink) {
  return new Command("dev")
    .description("run a server and workers on this host (loopback only)")
    .addOption(listenOption())
    .addOption(storeKindOption())
    .addOption(dataDirOption(DEV_DATA_DIR))
    .addOption(retentionOption())
    .addOption(maxJobOutputOption())
    .addOption(new Option("--workers <n>", "workers to run").default("1"))
    .addOption(workerQueueOption("queue the workers take jobs from"))
    .addOption(protocolOption())
    .addOption(runAsOption())
    .addOption(defaultRetryOptions()[0])
    .addOption(defaultRetryOptions()[1])
    .addOption(logLevelOption().default("warn" as const))
    .addHelpText(
      "after",
      "\nExample:\n  airunner dev\n  airunner submit --follow -- echo hello   # in another shell",
    )
    .action(async (opts) => {
      try {
        setExitCode(await runDev(opts));
      } catch (error) {
        setExitCode(reportError(error));
      }
    });
}

async function runDev(opts: {
  listen: string;
  store: StoreKind;
  dataDir: string;
  retention: string;
  maxJobOutput: string;
  workers: string;
  queue: readonly string[];
  protocol: string;
  runAs?: string | undefined;
  logLevel: string;
  defaultRetries?: string | undefined;
  defaultRetryDelay?: string | undefined;
}): Promise<number> {
  const listen = parseListenAddress(opts.listen);
  if (!isLoopback(listen.hostname)) {
    throw new UsageError(
      `--listen: dev listens on loopback only (127.0.0.1 or ::1), not ${listen.hostname}; use "airunner server" to serve other hosts`,
    );
  }
  const workers = parseInteger(opts.workers, "--workers", 1, 64);
  // Checked before anything starts; parseWorkerConfig takes them as they are.
  const queues = parseWorkerQueues(opts.queue);
  const defaultRetry = defaultRetryPolicyOf(opts);
  const storeConfig = parseStoreConfig(opts);
  const logger = createLogger({ level: opts.logLevel as LogLevel });
  const opened = await openStore(storeConfig, logger);
  await using store = opened.store;
  await using server = await listenOrExplain(() =>
    startServer({
      store,
      logger,
      hostname: listen.hostname,
      port: listen.port,
      // The store drops output past the cap; workers are told it so they stop sending it.
      executionConfig: defaultExecutionConfig(storeConfig.maxJobOutputBytes),
      ...(defaultRetry === undefined ? {} : { defaultRetry }),
    }), listen);
  const config = parseWorkerConfig({
    server: server.url,
    queue: queues,
    concurrency: "1",
    visibilityTimeout: WORKER_DEFAULTS.visibilityTimeout,
    shutdownGrace: WORKER_DEFAULTS.shutdownGrace,
    // The data dir is private (0700) and holds the job store: a user that
    // jobs run as could not reach workspaces in it, and must not reach it.
    workspaceRoot: opts.runAs === undefined
      ? join(storeConfig.dataDir, "workspaces")
      : defaultWorkspaceRoot(),
    keepWorkspaces: false,
    protocol: opts.protocol,
    runAs: opts.runAs,
  });
  const runAs = await jobUserFor(config, logger);
  const running = Array.from({ length: workers }, () => startWorkerFor(config, logger, runAs));
  console.error(
    `airunner dev: server on ${server.url}, ${workers} worker(s) on ${
      describeQueues(config.queues)
    }; submit with: airunner submit --server ${server.url} --follow -- echo hello`,
  );
  console.error(`airunner dev: ${opened.description}; no authentication (loopback only)`);
  const unsubscribe = onShutdownSignals(...shutdownSteps(running, config.shutdownGraceMs));
  await Promise.all(running.map((w) => w.finished));
  unsubscribe();
  // Followers of the last jobs read their results right after the end of
  // the stream; give them a moment before the server goes away.
  await new Promise((resolve) => setTimeout(resolve, FOLLOWER_LINGER_MS));
  return 0;
}
