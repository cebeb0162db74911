/**
 * `airunner server`: serve the job.v1 API until SIGINT/SIGTERM.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { createLogger, type LogLevel } from "../logger.ts";
import { defaultExecutionConfig } from "../server/execution_config.ts";
import { startServer } from "../server/http_server.ts";
import type { ExitCodeSink } from "./common_options.ts";
import { listenOption, logLevelOption } from "./commander_options.ts";
import {
  dataDirOption,
  maxJobOutputOption,
  parseStoreConfig,
  retentionOption,
  serverDataDirDefault,
  type StoreConfig,
  storeKindOption,
} from "./store_options.ts";
import { openStore } from "./store_opener.ts";
import { type ListenAddress, parseListenAddress } from "./parse.ts";
import { reportError } from "./errors.ts";
import type { RetryPolicy } from "../../gen/job/v1/job_pb.ts";
import { defaultRetryOptions, defaultRetryPolicyOf } from "./retry_default_options.ts";
import { onShutdownSignals } from "./shutdown_signals.ts";
import {
  jwtPublicKeyOption,
  noAuthOption,
  resolveSecurity,
  type SecurityFlags,
  tlsCertOption,
  tlsKeyOption,
  tlsModeOption,
} from "./security_options.ts";

/** Settings of `airunner server`. */
export interface ServerConfig {
  readonly listen: ListenAddress;
  readonly store: StoreConfig;
  readonly logLevel: LogLevel;
  readonly security: SecurityFlags;
  /** The retry policy of jobs enqueued without one (`--default-retries`). */
  readonly defaultRetry?: RetryPolicy | undefined;
}

/** Builds the `server` command. */
export function serverCommand(setExitCode: ExitCodeSink) {
  return new Command("server")
    .description("serve the job queue API")
    .addOption(listenOption())
    .addOption(storeKindOption())
    .addOption(dataDirOption(serverDataDirDefault()))
    .addOption(retentionOption())
    .addOption(maxJobOutputOption())
    .addOption(jwtPublicKeyOption())
    .addOption(noAuthOption())
    .addOption(tlsCertOption())
    .addOption(tlsKeyOption())
    .addOption(tlsModeOption())
    .addOption(defaultRetryOptions()[0])
    .addOption(defaultRetryOptions()[1])
    .addOption(logLevelOption())
    .addHelpText(
      "after",
      "\nExamples:\n  airunner token keygen --out keys\n  airunner server --listen 0.0.0.0:8443 --jwt-public-key keys/public.pem --tls auto\n  airunner server --listen 127.0.0.1:8080 --no-auth --data-dir /var/lib/airunner --retention 7d\n  airunner server --default-retries 2 --default-retry-delay 5s..10m --jwt-public-key keys/public.pem",
    )
    .action(async (opts) => {
      try {
        setExitCode(
          await runServer({
            listen: parseListenAddress(opts.listen),
            store: parseStoreConfig(opts),
            logLevel: opts.logLevel,
            security: opts,
            defaultRetry: defaultRetryPolicyOf(opts),
          }),
        );
      } catch (error) {
        setExitCode(reportError(error));
      }
    });
}

/** Runs the server until a shutdown signal; returns the exit code. */
export async function runServer(config: ServerConfig): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  const security = await resolveSecurity(config.security, {
    hostname: config.listen.hostname,
    dataDir: config.store.dataDir,
  });
  const { notices, ...serving } = security;
  const opened = await openStore(config.store, logger);
  await using store = opened.store;
  await using server = await listenOrExplain(() =>
    startServer({
      store,
      logger,
      hostname: config.listen.hostname,
      port: config.listen.port,
      // The store drops output past the cap; workers are told it so they stop sending it.
      executionConfig: defaultExecutionConfig(config.store.maxJobOutputBytes),
      ...(config.defaultRetry === undefined ? {} : { defaultRetry: config.defaultRetry }),
      ...serving,
    }), config.listen);
  const auth = security.auth === undefined ? "no authentication" : "ES256 tokens required";
  console.error(`airunner: server listening on ${server.url} (${opened.description}; ${auth})`);
  for (const notice of notices) console.error(notice);
  if (config.store.kind === "memory") {
    console.error("airunner: warning: the memory store keeps jobs only until the server exits");
  }
  const stopped = Promise.withResolvers<void>();
  const unsubscribe = onShutdownSignals(() => stopped.resolve(), () => Deno.exit(130));
  await Promise.race([stopped.promise, server.finished]);
  unsubscribe();
  console.error("airunner: server shutting down");
  return 0;
}

/** Why a server could not listen, in words that name the address. */
export class ListenError extends Error {
  constructor(address: ListenAddress, reason: string) {
    super(`cannot listen on ${formatAddress(address)}: ${reason}`);
    this.name = "ListenError";
  }
}

/** Starts a server, turning "address in use" and similar into a {@link ListenError}. */
export async function listenOrExplain<T>(
  start: () => Promise<T>,
  address: ListenAddress,
): Promise<T> {
  try {
    return await start();
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new ListenError(
        address,
        "the address is already in use (is another airunner running?)",
      );
    }
    if (
      error instanceof Deno.errors.AddrNotAvailable || error instanceof Deno.errors.PermissionDenied
    ) {
      throw new ListenError(address, error.message);
    }
    throw error;
  }
}

function formatAddress({ hostname, port }: ListenAddress): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}
