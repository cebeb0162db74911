/**
 * Per-job workspaces: a fresh directory under the worker's workspace root
 * with the job's repository checked out (shallow where the server allows),
 * at its commit, else its branch, else the default branch. The job's
 * working_directory is relative to the checkout and may not leave it.
 *
 * @module
 */
import { isAbsolute, join, normalize, relative } from "node:path";
import { letThrough } from "./job_home.ts";
import { runAsPrefix, type RunAsUser } from "./run_as.ts";

/** Why a checkout could not be made; `message` carries git's own words. */
export class CheckoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckoutError";
  }
}

/** What to check out, and where. */
export interface CheckoutRequest {
  /** Directory under which the workspace is made; absolute (a relative one is refused). */
  readonly root: string;
  /** Names the workspace (job id and attempt). */
  readonly name: string;
  readonly repository: string;
  readonly commit: string;
  readonly branch: string;
  /**
   * The worker's environment, for git's credential helpers, proxies and SSH
   * agent. Not the job's: a job's `GIT_CONFIG_*`, `GIT_SSH_COMMAND` or
   * `LD_PRELOAD` would run commands here, as the worker's user and outside
   * the job's process group, timeout and cancel.
   */
  readonly env: Readonly<Record<string, string>>;
  /** Stops git (the job was cancelled, timed out or the worker stops). */
  readonly signal: AbortSignal;
  /**
   * The user jobs run as (`--run-as`): git runs as it too, so a job can
   * clone only what that user can read, the checkout is the user's from the
   * start, and a local clone copies objects, never hard-links
   * another owner's files.
   */
  readonly runAs?: RunAsUser;
}

/** A checked-out workspace. */
export interface Workspace {
  /** The checkout's top directory. */
  readonly dir: string;
  /** Removes the workspace (unless the worker keeps them). */
  remove(): Promise<void>;
}

/**
 * Clones `request.repository` into a fresh workspace and checks out what it
 * names. Every value from the job reaches git after `--end-of-options` or
 * `--` (or as the value of an option), so none is ever read as an option,
 * even one stored before enqueue validation refused such values.
 * @throws {CheckoutError} when the root is relative, or git fails.
 */
export async function checkOut(request: CheckoutRequest, keep: boolean): Promise<Workspace> {
  // A relative root would be resolved against whatever directory git runs
  // in: the clone landed in <root>/<root>/<job> and the job ran, "successfully",
  // in an empty directory of someone else's repository.
  if (!isAbsolute(request.root)) {
    throw new CheckoutError(`the workspace root "${request.root}" is not an absolute path`);
  }
  await Deno.mkdir(request.root, { recursive: true, mode: 0o700 });
  const dir = await Deno.makeTempDir({ dir: request.root, prefix: `${request.name}-` });
  if (request.runAs !== undefined) {
    await Deno.chown(dir, request.runAs.uid, request.runAs.gid);
    await letThrough(request.root, dir);
  }
  const workspace: Workspace = {
    dir,
    remove: keep
      ? () => Promise.resolve()
      : () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
  try {
    if (request.commit !== "") {
      await git(request, dir, ["init", "--quiet"]);
      await git(request, dir, ["remote", "add", "--end-of-options", "origin", request.repository]);
      // Servers may refuse to send a bare commit; then fetch the history.
      const shallow = await git(request, dir, [
        "fetch",
        "--quiet",
        "--depth",
        "1",
        "--end-of-options",
        "origin",
        request.commit,
      ])
        .then(() => true, () => false);
      if (!shallow) await git(request, dir, ["fetch", "--quiet", "--end-of-options", "origin"]);
      // git checkout has no --end-of-options (2.39); it gets the full id git resolved.
      const target = shallow ? "FETCH_HEAD" : request.commit;
      const id = await git(request, dir, [
        "rev-parse",
        "--verify",
        "--end-of-options",
        `${target}^{commit}`,
      ]);
      await git(request, dir, ["checkout", "--quiet", "--detach", id.trim(), "--"]);
    } else {
      const branch = request.branch === "" ? [] : [`--branch=${request.branch}`];
      // As another user, a local path is copied like a remote (hard links
      // would share the source's files, whoever owns them).
      const local = request.runAs === undefined ? [] : ["--no-local"];
      await git(request, dir, [
        "clone",
        "--quiet",
        ...local,
        "--depth",
        "1",
        ...branch,
        "--",
        request.repository,
        dir,
      ]);
    }
    await assertCheckedOutIn(dir);
  } catch (error) {
    await workspace.remove();
    throw error;
  }
  return workspace;
}

/** A job must never run anywhere but in its own checkout, whatever git did. */
async function assertCheckedOutIn(dir: string): Promise<void> {
  const gitDir = await Deno.lstat(join(dir, ".git")).catch(() => undefined);
  if (gitDir?.isDirectory !== true) {
    throw new CheckoutError(`git reported success but left no checkout in ${dir}`);
  }
}

/**
 * The directory a job runs in: `workingDirectory` (relative) inside
 * `checkout`, or the checkout itself.
 * @throws {CheckoutError} when it is absolute or leads out of the checkout.
 */
export function workingDirectoryIn(checkout: string, workingDirectory: string): string {
  if (workingDirectory === "") return checkout;
  if (isAbsolute(workingDirectory)) {
    throw new CheckoutError(
      `working_directory "${workingDirectory}" must be relative to the repository checkout`,
    );
  }
  const dir = normalize(join(checkout, workingDirectory));
  const inside = relative(checkout, dir);
  if (inside.startsWith("..") || isAbsolute(inside)) {
    throw new CheckoutError(`working_directory "${workingDirectory}" leads out of the checkout`);
  }
  // A repository may hold a symlink that points outside (sub -> /); follow
  // links and check again. A directory that does not exist fails at start.
  const real = realPathOrUndefined(dir);
  if (real !== undefined) {
    const realInside = relative(Deno.realPathSync(checkout), real);
    if (realInside.startsWith("..") || isAbsolute(realInside)) {
      throw new CheckoutError(
        `working_directory "${workingDirectory}" leads out of the checkout through a symlink`,
      );
    }
  }
  return dir;
}

function realPathOrUndefined(path: string): string | undefined {
  try {
    return Deno.realPathSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Whether git can be run here. */
export async function gitAvailable(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("git", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * Runs git in `cwd`, returns its stdout. Configuration for repositories
 * someone else names: never prompt (a private repository fails at once
 * instead of hanging on a password nobody types), and never the `ext::`
 * transport, which runs a command (git's default, pinned here). Under
 * `--run-as`, git runs as the user through setpriv, with HOME the
 * workspace (the worker's own is not the user's to read).
 */
async function git(request: CheckoutRequest, cwd: string, args: string[]): Promise<string> {
  const gitArgs = ["-c", "advice.detachedHead=false", "-c", "protocol.ext.allow=never", ...args];
  const user = request.runAs;
  const env = gitEnvironment(request.env);
  if (user !== undefined) {
    env.HOME = cwd;
    delete env.XDG_CONFIG_HOME;
  }
  const [program, ...programArgs] = user === undefined
    ? ["git", ...gitArgs]
    : [...runAsPrefix(user), "git", ...gitArgs];
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(program!, {
      args: programArgs,
      cwd,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: request.signal,
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CheckoutError(
        "checking out a repository needs git, which this worker's host lacks",
      );
    }
    throw error;
  }
  if (!output.success) {
    const said = new TextDecoder().decode(output.stderr).split("\n").map((l) => l.trim())
      .filter((l) => l !== "").join(" ").slice(0, 600);
    throw new CheckoutError(`git ${args[0]} failed: ${said || `exit code ${output.code}`}`);
  }
  return new TextDecoder().decode(output.stdout);
}

/** The environment git runs with: the worker's, without its token, never prompting. */
export function gitEnvironment(
  workerEnv: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = { ...workerEnv, GIT_TERMINAL_PROMPT: "0" };
  delete env.AIRUNNER_TOKEN;
  return env;
}
