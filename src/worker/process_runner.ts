/**
 * Starting a job's command as a child process with piped output.
 *
 * @module
 */

/** What to run. */
export interface ProcessSpec {
  readonly command: string;
  readonly args: readonly string[];
  /** The whole environment of the process (nothing is inherited beyond it). */
  readonly env: Readonly<Record<string, string>>;
  /** Working directory; the worker's own when absent. */
  readonly cwd?: string;
}

/** How a process ended. */
export interface ProcessExit {
  /** The exit code; 128 + N when killed by signal N, as shells report it. */
  readonly exitCode: number;
  /** The signal that killed it, if any. */
  readonly signal: Deno.Signal | null;
}

/** A started process. */
export interface RunningProcess {
  readonly pid: number;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly exit: Promise<ProcessExit>;
  /** Sends `signal` to the process and everything it started (its process group). */
  kill(signal: Deno.Signal): void;
}

/** Why a command could not start. `exitCode` follows the shell: 127 not found, 126 not runnable. */
export class ProcessStartError extends Error {
  constructor(message: string, readonly exitCode: 126 | 127) {
    super(message);
    this.name = "ProcessStartError";
  }
}

const IS_WINDOWS = Deno.build.os === "windows";

/**
 * Starts `spec` in a process group of its own (a new session on Unix), so
 * that stopping the job stops everything it started, not only its first
 * process.
 * @throws {ProcessStartError} when the command or working directory cannot be used.
 */
export function startProcess(spec: ProcessSpec): RunningProcess {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(spec.command, {
      args: [...spec.args],
      env: { ...spec.env },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached: !IS_WINDOWS,
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
    }).spawn();
  } catch (error) {
    throw describeSpawnError(spec, error);
  }
  return {
    pid: child.pid,
    stdout: child.stdout,
    stderr: child.stderr,
    exit: child.status.then((s) => ({ exitCode: s.code, signal: s.signal })),
    kill(signal) {
      try {
        if (IS_WINDOWS) child.kill(signal);
        else Deno.kill(-child.pid, signal);
      } catch {
        // The whole group has exited: nothing to stop.
      }
    },
  };
}

function describeSpawnError(spec: ProcessSpec, error: unknown): ProcessStartError {
  const detail = error instanceof Error ? error.message : String(error);
  if (error instanceof Deno.errors.NotFound) {
    if (detail.includes("cwd")) {
      return new ProcessStartError(`working directory not found: ${spec.cwd}`, 126);
    }
    return new ProcessStartError(`command not found: ${spec.command}`, 127);
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new ProcessStartError(`permission denied: ${spec.command}`, 126);
  }
  return new ProcessStartError(`cannot start ${spec.command}: ${detail}`, 126);
}
