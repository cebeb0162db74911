/**
 * Options shared by several subcommands, so that each flag reads the same
 * everywhere: `--server` (AIRUNNER_SERVER), `--log-level`
 * (AIRUNNER_LOG_LEVEL), `--listen` (AIRUNNER_LISTEN), `--queue`.
 *
 * @module
 */
import { Option } from "@commander-js/extra-typings";
import {
  type AirunnerClients,
  createAirunnerClients,
  DEFAULT_SERVER_URL,
} from "../protocol/transport.ts";
import { LOG_LEVELS } from "../log_levels.ts";
import { parseDurationMs, UsageError } from "./parse.ts";

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

/** `--token TOKEN`: the API token sent with every call. */
export function tokenOption() {
  return new Option("--token <token>", "API token (from airunner token)").env("AIRUNNER_TOKEN");
}

/** `--ca-cert FILE`: a private CA to trust for https:// servers. */
export function caCertOption() {
  return new Option("--ca-cert <file>", "PEM file of a CA to trust for https:// servers")
    .env("AIRUNNER_CA_CERT");
}

/** `--timeout DURATION`: the deadline of each call to the server. */
export function callTimeoutOption() {
  return new Option("--timeout <duration>", "give up on each call to the server after this long")
    .env("AIRUNNER_CALL_TIMEOUT");
}

/** `--call-timeout DURATION`: the call deadline of `submit`, whose --timeout is the job's. */
export function submitCallTimeoutOption() {
  return new Option(
    "--call-timeout <duration>",
    "give up on each call to the server after this long",
  )
    .env("AIRUNNER_CALL_TIMEOUT");
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
export async function clientsFrom(flags: ClientFlags): Promise<AirunnerClients> {
  const timeoutMs = flags.callTimeout === undefined
    ? undefined
    : parseDurationMs(flags.callTimeout, "--timeout");
  const caCertPem = await readCaCert(flags.caCert);
  return createAirunnerClients({
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
