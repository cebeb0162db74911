/**
 * The exit codes airunner itself uses, in a module of their own: the
 * program's entry needs them before it loads any command, and
 * exit_codes.ts (which re-exports them) imports the protobuf registry.
 *
 * @module
 */

export const ExitCode = {
  Ok: 0,
  /** A command failed (the server refused a request, a job was not found, ...). */
  Error: 1,
  /** The command line was wrong: unknown command or flag, bad value. */
  Usage: 2,
  /** The job timed out (as `timeout(1)` reports it). */
  JobTimedOut: 124,
  /** airunner itself failed: server unreachable, protocol error. */
  AirunnerFailed: 125,
  /** The job's command could not start. */
  CommandCannotRun: 126,
  /** The job's command was not found. */
  CommandNotFound: 127,
  /** The job was cancelled. */
  JobCancelled: 130,
} as const;
