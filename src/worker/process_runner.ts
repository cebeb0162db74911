/**
 * Starting a job's command as a child process with piped output, in a
 * process group of its own so that stopping the job stops everything it
 * started.
 *
 * On Linux the command is started through `setsid(1)`, which makes the new
 * session and then execs the command in place (same pid). Deno's own
 * `detached` option forks the whole worker process to do the same, which
 * costs milliseconds per job once the worker's heap is large (measured: 245
 * spawns/s detached vs 857/s through setsid, with a 250 MB parent). Where
 * setsid is missing (macOS), `detached` is used.
 *
 * @module
 */
import { ptyInvocation, scriptFlavour, scriptPath, type WindowSize } from "./pty.ts";
import { runAsPrefix, type RunAsUser } from "./run_as.ts";

/** What to run. */
export interface ProcessSpec {
  readonly command: string;
  readonly args: readonly string[];
  /** The whole environment of the process (nothing is inherited beyond it). */
  readonly env: Readonly<Record<string, string>>;
  /** Working directory; the worker's own when absent. */
  readonly cwd?: string;
  /** Run on a pseudo-terminal of this size (stdout and stderr become one stream). */
  readonly pty?: WindowSize;
  /** Run as this user (through setpriv, after the new session; pty jobs: script(1) too). */
  readonly runAs?: RunAsUser;
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
 * Starts `spec`.
 * @throws {ProcessStartError} when the command or working directory cannot be used.
 */
export function startProcess(spec: ProcessSpec): RunningProcess {
  let executable = resolveExecutable(spec);
  let args: readonly string[] = spec.args;
  if (spec.pty !== undefined) {
    const flavour = scriptFlavour();
    if (flavour === undefined) {
      throw new ProcessStartError(
        "pty jobs need script(1) (util-linux on Linux, part of macOS), which this worker's host lacks; install it or run the job as a pipe job",
        126,
      );
    }
    args = ptyInvocation(flavour, executable, spec.args, spec.pty);
    executable = scriptPath();
  }
  const setsid = IS_WINDOWS ? undefined : setsidPath();
  const argv = [
    ...(setsid === undefined ? [] : [setsid]),
    ...(spec.runAs === undefined ? [] : runAsPrefix(spec.runAs)),
    executable,
    ...args,
  ];
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      env: { ...spec.env },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached: !IS_WINDOWS && setsid === undefined,
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

/**
 * The path of the command to run, found the way a shell finds it (PATH of
 * the job's environment, relative to its working directory), so that "not
 * found" and "not runnable" are told apart before anything starts.
 */
export function resolveExecutable(spec: ProcessSpec): string {
  if (spec.cwd !== undefined) {
    let cwd: Deno.FileInfo | undefined;
    try {
      cwd = Deno.statSync(spec.cwd);
    } catch {
      cwd = undefined;
    }
    if (cwd === undefined || !cwd.isDirectory) {
      throw new ProcessStartError(`working directory not found: ${spec.cwd}`, 126);
    }
  }
  if (IS_WINDOWS) return spec.command; // PATHEXT lookup is left to the OS.
  if (spec.command.includes("/")) {
    const path = spec.command.startsWith("/") || spec.cwd === undefined
      ? spec.command
      : `${spec.cwd}/${spec.command}`;
    const found = executableAt(path);
    if (found === "missing") throw new ProcessStartError(`command not found: ${spec.command}`, 127);
    if (found === "not-executable") {
      throw new ProcessStartError(`permission denied: ${spec.command}`, 126);
    }
    return spec.command;
  }
  const searchPath = spec.env.PATH ?? "/usr/local/bin:/usr/bin:/bin";
  const cacheKey = `${searchPath}\0${spec.command}`;
  const cached = resolvedCommands.get(cacheKey);
  // A cached hit is checked again (one stat of a file that exists is cheap);
  // misses are not cached, so a command installed meanwhile is found.
  if (cached !== undefined && executableAt(cached) === "ok") return cached;
  let sawNotExecutable = false;
  for (const dir of searchPath.split(":")) {
    const path = `${dir === "" ? "." : dir}/${spec.command}`;
    const relative = !path.startsWith("/");
    const found = executableAt(relative && spec.cwd !== undefined ? `${spec.cwd}/${path}` : path);
    if (found === "ok") {
      if (!relative) remember(cacheKey, path);
      return path;
    }
    if (found === "not-executable") sawNotExecutable = true;
  }
  if (sawNotExecutable) throw new ProcessStartError(`permission denied: ${spec.command}`, 126);
  throw new ProcessStartError(`command not found: ${spec.command}`, 127);
}

/** Commands found on PATH, by PATH and name: a lookup costs a failed stat per directory before the hit. */
const resolvedCommands = new Map<string, string>();

function remember(key: string, path: string): void {
  if (resolvedCommands.size >= 1024) resolvedCommands.clear();
  resolvedCommands.set(key, path);
}

function executableAt(path: string): "ok" | "missing" | "not-executable" {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    return "missing";
  }
  if (info.isDirectory) return "not-executable";
  return info.mode === null || (info.mode & 0o111) !== 0 ? "ok" : "not-executable";
}

let setsidLookup: string | null | undefined;

/** Where setsid(1) is, once looked up; null where there is none. */
function setsidPath(): string | undefined {
  if (setsidLookup === undefined) {
    setsidLookup = Deno.build.os !== "linux" ? null : ["/usr/bin/setsid", "/bin/setsid"].find(
      (path) => executableAt(path) === "ok",
    ) ?? null;
  }
  return setsidLookup ?? undefined;
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
