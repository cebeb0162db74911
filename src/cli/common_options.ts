/**
 * Options shared by several subcommands, so that each flag reads the same
 * everywhere: `--server` (AIRUNNER_SERVER), `--log-level`
 * (AIRUNNER_LOG_LEVEL), `--listen` (AIRUNNER_LISTEN), `--queue`.
 *
 * @module
 */
import { Option } from "@commander-js/extra-typings";
import { DEFAULT_SERVER_URL } from "../client/transport.ts";
import { LOG_LEVELS } from "../logger.ts";

/** `--server URL`. */
export function serverOption() {
  return new Option("--server <url>", "server URL").env("AIRUNNER_SERVER").default(
    DEFAULT_SERVER_URL,
  );
}

/** `--log-level LEVEL`. */
export function logLevelOption() {
  return new Option("--log-level <level>", "log level of diagnostics on stderr")
    .choices(LOG_LEVELS).env("AIRUNNER_LOG_LEVEL").default("info" as const);
}

/** `--listen HOST:PORT`. */
export function listenOption() {
  return new Option("--listen <address>", "address to listen on (HOST:PORT)")
    .env("AIRUNNER_LISTEN").default("127.0.0.1:8080");
}

/** `--queue NAME`. */
export function queueOption(description = "queue name") {
  return new Option("--queue <name>", description).env("AIRUNNER_QUEUE").default("default");
}

/** Receives a subcommand's exit code. */
export type ExitCodeSink = (code: number) => void;
