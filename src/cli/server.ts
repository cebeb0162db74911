/**
 * `airunner server`: serve the job.v1 API until SIGINT/SIGTERM.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { createLogger, type LogLevel } from "../logger.ts";
import { startServer } from "../server/http_server.ts";
import { type ExitCodeSink, listenOption, logLevelOption } from "./common_options.ts";
import {
  dataDirOption,
  openConfiguredStore,
  parseStoreConfig,
  retentionOption,
  serverDataDirDefault,
  type StoreConfig,
  storeKindOption,
} from "./store_options.ts";
import { reportError } from "./errors.ts";
import { isLoopback, type ListenAddress, parseListenAddress } from "./parse.ts";
import { onShutdownSignals } from "./shutdown_signals.ts";

/** Settings of `airunner server`. */
export interface ServerConfig {
  readonly listen: ListenAddress;
  readonly store: StoreConfig;
  readonly logLevel: LogLevel;
}

/** Builds the `server` command. */
export function serverCommand(setExitCode: ExitCodeSink) {
  return new Command("server")
    .description("serve the job queue API")
    .addOption(listenOption())
    .addOption(storeKindOption())
    .addOption(dataDirOption(serverDataDirDefault()))
    .addOption(retentionOption())
    .option("--no-auth", "serve without authentication (the only mode until JWT auth lands)")
    .addOption(logLevelOption())
    .addHelpText(
      "after",
      "\nExamples:\n  airunner server --listen 127.0.0.1:8080 --no-auth\n  airunner server --data-dir /var/lib/airunner --retention 7d --no-auth",
    )
    .action(async (opts) => {
      try {
        setExitCode(
          await runServer({
            listen: parseListenAddress(opts.listen),
            store: parseStoreConfig(opts),
            logLevel: opts.logLevel,
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
  const opened = await openConfiguredStore(config.store, logger);
  await using store = opened.store;
  await using server = await listenOrExplain(() =>
    startServer({
      store,
      logger,
      hostname: config.listen.hostname,
      port: config.listen.port,
    }), config.listen);
  console.error(`airunner: server listening on ${server.url} (${opened.description})`);
  warnAboutSetup(config);
  const stopped = Promise.withResolvers<void>();
  const unsubscribe = onShutdownSignals(() => stopped.resolve(), () => Deno.exit(130));
  await Promise.race([stopped.promise, server.finished]);
  unsubscribe();
  console.error("airunner: server shutting down");
  return 0;
}

function warnAboutSetup(config: ServerConfig): void {
  if (config.store.kind === "memory") {
    console.error("airunner: warning: the memory store keeps jobs only until the server exits");
  }
  const exposure = isLoopback(config.listen.hostname)
    ? "only this host can reach it"
    : `ANYONE who can reach ${config.listen.hostname} can run commands on your workers`;
  console.error(
    `airunner: warning: authentication is not available yet; every request is accepted (${exposure})`,
  );
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
