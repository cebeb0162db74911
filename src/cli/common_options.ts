/**
 * Options shared by several subcommands, so that each flag reads the same
 * everywhere: `--server` (AIRUNNER_SERVER), `--log-level`
 * (AIRUNNER_LOG_LEVEL), `--listen` (AIRUNNER_LISTEN), `--queue`, as specs
 * (command_spec.ts); commander_options.ts makes commander Options of them.
 * Imports no commander, so client commands can use it without loading it.
 *
 * @module
 */
import { type CliClients, createJsonClients } from "../client/json_client.ts";
import { DEFAULT_SERVER_URL } from "../protocol/server_url.ts";
import { LOG_LEVELS } from "../log_levels.ts";
import type { OptionSpec } from "./command_spec.ts";
import { parseDurationMs, UsageError } from "./parse.ts";

/** `--server URL`. */
export const SERVER_OPTION = {
  flags: "--server <url>",
  description: "server URL",
  env: "AIRUNNER_SERVER",
  defaultValue: DEFAULT_SERVER_URL,
} as const satisfies OptionSpec;

/** `--log-level LEVEL`. */
export const LOG_LEVEL_OPTION = {
  flags: "--log-level <level>",
  description: "log level of diagnostics on stderr",
  choices: LOG_LEVELS,
  env: "AIRUNNER_LOG_LEVEL",
  defaultValue: "info",
} as const satisfies OptionSpec;

/** `--listen HOST:PORT`. */
export const LISTEN_OPTION = {
  flags: "--listen <address>",
  description: "address to listen on (HOST:PORT)",
  env: "AIRUNNER_LISTEN",
  defaultValue: "127.0.0.1:8080",
} as const satisfies OptionSpec;

/** `--queue NAME`. */
export function queueOptionSpec(description = "queue name") {
  return {
    flags: "--queue <name>",
    description,
    env: "AIRUNNER_QUEUE",
    defaultValue: "default",
  } as const satisfies OptionSpec;
}

/** `--token TOKEN`: the API token sent with every call. */
export const TOKEN_OPTION = {
  flags: "--token <token>",
  description: "API token (from airunner token)",
  env: "AIRUNNER_TOKEN",
} as const satisfies OptionSpec;

/** `--ca-cert FILE`: a private CA to trust for https:// servers. */
export const CA_CERT_OPTION = {
  flags: "--ca-cert <file>",
  description: "PEM file of a CA to trust for https:// servers",
  env: "AIRUNNER_CA_CERT",
} as const satisfies OptionSpec;

/** `--timeout DURATION`: the deadline of each call to the server. */
export const CALL_TIMEOUT_OPTION = {
  flags: "--timeout <duration>",
  description: "give up on each call to the server after this long",
  env: "AIRUNNER_CALL_TIMEOUT",
} as const satisfies OptionSpec;

/** `--call-timeout DURATION`: the call deadline of `submit`, whose --timeout is the job's. */
export const SUBMIT_CALL_TIMEOUT_OPTION = {
  flags: "--call-timeout <duration>",
  description: "give up on each call to the server after this long",
  env: "AIRUNNER_CALL_TIMEOUT",
} as const satisfies OptionSpec;

/** The options every client command has: where the server is and how to reach it. */
export const CLIENT_OPTIONS: readonly OptionSpec[] = [
  SERVER_OPTION,
  TOKEN_OPTION,
  CA_CERT_OPTION,
  CALL_TIMEOUT_OPTION,
];

/** The flags of {@link CLIENT_OPTIONS}, as a command's spec parses them. */
export interface ClientCommandFlags {
  readonly server: string;
  readonly token?: string;
  readonly caCert?: string;
  /** The call deadline (`--timeout`), a duration such as 30s. */
  readonly timeout?: string;
}

/** What the client flags carry. */
export interface ClientFlags {
  readonly server: string;
  readonly token?: string | undefined;
  readonly caCert?: string | undefined;
  /** A duration such as 30s. */
  readonly callTimeout?: string | undefined;
}

/** Clients for the server the flags name. */
export async function clientsFrom(
  flags: ClientFlags,
  callTimeoutFlag = "--timeout",
): Promise<CliClients> {
  const timeoutMs = flags.callTimeout === undefined
    ? undefined
    : parseDurationMs(flags.callTimeout, callTimeoutFlag);
  const caCertPem = await readCaCert(flags.caCert);
  return createJsonClients({
    serverUrl: flags.server,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(flags.token === undefined ? {} : { token: flags.token }),
    ...(caCertPem === undefined ? {} : { caCertPem }),
  });
}

/** The PEM text of the `--ca-cert` file, if one was named. */
export async function readCaCert(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`--ca-cert: cannot read ${path}: ${(error as Error).message}`);
  }
}

/** Receives a subcommand's exit code. */
export type ExitCodeSink = (code: number) => void;
