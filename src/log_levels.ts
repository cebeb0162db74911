/**
 * The log levels of `--log-level`, apart from the logger itself: every
 * command declares the flag, and only those that log should load pino.
 *
 * @module
 */

/** Log levels accepted by `--log-level`. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];
