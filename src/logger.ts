/**
 * The one pino logger of airunner. Diagnostics go to stderr as JSON lines
 * (readable lines on a terminal); user-facing output (job ids, job output,
 * tables) never goes through it.
 *
 * @module
 */
import pino from "pino";
import { readableStderr } from "./log_format.ts";
import type { LogLevel } from "./log_levels.ts";

/** The logger type used across airunner. */
export type Logger = pino.Logger;

export { LOG_LEVELS, type LogLevel } from "./log_levels.ts";

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  readonly level?: LogLevel;
  /** Where lines go; stderr by default. Tests pass an in-memory stream. */
  readonly destination?: pino.DestinationStream;
}

/** Creates the process's logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      // pid only: reading the hostname would need an extra permission and
      // adds nothing on a single host.
      base: { pid: Deno.pid },
      // Secrets that may pass through log calls by mistake: tokens, keys and
      // job environments (which carry credentials), secret or not. Code logs none of them on
      // purpose; this is the net under that rule.
      redact: {
        paths: [
          "taskToken",
          "token",
          "authorization",
          "environment",
          "secretEnvironment",
          "signingKey",
          "*.taskToken",
          "*.token",
          "*.authorization",
          "*.environment",
          "*.secretEnvironment",
          "*.signingKey",
          // A job or its parameters logged whole: `{ job }`, `{ params }`.
          "*.*.environment",
          "*.*.secretEnvironment",
          "headers.authorization",
        ],
        censor: "[redacted]",
      },
    },
    options.destination ?? defaultDestination(),
  );
}

/**
 * JSON lines when stderr is a file, a pipe or a log collector; readable
 * lines when a person watches it on a terminal (colour unless NO_COLOR).
 */
function defaultDestination(): pino.DestinationStream {
  if (Deno.stderr.isTerminal()) {
    const noColor = (Deno.env.get("NO_COLOR") ?? "") !== "";
    return readableStderr(!noColor);
  }
  return pino.destination({ fd: 2, sync: true });
}

/** A logger that writes nothing (for tests and embedded use). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
