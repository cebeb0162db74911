/**
 * Jobs as another user (`worker --run-as USER`): a worker started as root
 * runs each job's command with that user's uid, gid and supplementary
 * groups, through util-linux `setpriv --reuid --regid --init-groups`
 * (Deno's own `uid`/`gid` options drop the supplementary groups). The job
 * then cannot read the worker's environment or memory (`/proc/<worker>/`
 * is the worker's user's only), its token, or root's files.
 *
 * Everything is checked once, at start, with a clear error: the worker must
 * be root, the user must exist, setpriv must be there, and the user must be
 * able to reach the workspace root (every directory above it searchable),
 * which is made 0711: the user can enter the workspaces it is given, not
 * list or read anything else the worker keeps there.
 *
 * @module
 */
import { dirname, resolve } from "node:path";

/** The user jobs run as. */
export interface RunAsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Every group of the user, its primary one included. */
  readonly groups: readonly number[];
  /** Where setpriv(1) is. */
  readonly setpriv: string;
}

/** Why jobs cannot run as the user asked for; the message names the user. */
export class RunAsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RunAsError";
  }
}

/**
 * Looks `name` up and readies `workspaceRoot` for its jobs.
 * @param currentUid the worker's uid; looked up when not given (a test passes one to show "not root").
 * @throws {RunAsError} when jobs cannot run as `name` here.
 */
export async function prepareRunAs(
  name: string,
  workspaceRoot: string,
  currentUid?: number | null,
): Promise<RunAsUser> {
  const flag = `--run-as ${name}`;
  if (Deno.build.os !== "linux") {
    throw new RunAsError(`${flag}: running jobs as another user works on Linux only`);
  }
  const uid = currentUid === undefined ? await effectiveUid() : currentUid;
  if (uid !== 0) {
    throw new RunAsError(
      `${flag}: only a worker started as root can run jobs as another user (this one runs as uid ${
        uid ?? "unknown"
      })`,
    );
  }
  if (name === "" || name.startsWith("-") || /[\s:]/.test(name)) {
    throw new RunAsError(`${flag}: not a user name`);
  }
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find(isFile);
  if (setpriv === undefined) {
    throw new RunAsError(`${flag}: needs setpriv(1) from util-linux, which this host lacks`);
  }
  const [userId, gid, groups, userName] = await Promise.all([
    idOf(name, "-u"),
    idOf(name, "-g"),
    idOf(name, "-G"),
    id(name, "-un"),
  ]);
  if (userId === undefined || gid === undefined || groups === undefined) {
    throw new RunAsError(`${flag}: no such user "${name}"`);
  }
  // A uid given as a number still gets its user's name in USER and LOGNAME.
  const user: RunAsUser = {
    name: userName ?? name,
    uid: userId[0]!,
    gid: gid[0]!,
    groups,
    setpriv,
  };
  const root = resolve(workspaceRoot);
  await Deno.mkdir(root, { recursive: true, mode: 0o700 });
  await Deno.chmod(root, 0o711);
  for (let dir = dirname(root);; dir = dirname(dir)) {
    const info = await Deno.stat(dir);
    if (!canSearch(info, user)) {
      const mode = (info.mode ?? 0) & 0o777;
      throw new RunAsError(
        `${flag}: ${name} cannot reach the workspace root ${root}, since ${dir} (mode ${
          mode.toString(8)
        }, owner uid ${info.uid}) is closed to it; choose a --workspace-root it can reach, for example under /tmp or /srv`,
      );
    }
    if (dirname(dir) === dir) break;
  }
  return user;
}

/**
 * The worker's effective uid, from `id -u` (Deno.uid needs --allow-sys=uid,
 * which airunner does not ask for), or null when it cannot be told.
 */
export async function effectiveUid(): Promise<number | null> {
  try {
    const output = await new Deno.Command("id", {
      args: ["-u"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    const uid = Number(new TextDecoder().decode(output.stdout).trim());
    return output.success && Number.isSafeInteger(uid) ? uid : null;
  } catch {
    return null;
  }
}

/** Whether `user` may search (enter) a directory of these owner, group and mode bits (pure). */
export function canSearch(
  info: Pick<Deno.FileInfo, "mode" | "uid" | "gid">,
  user: Pick<RunAsUser, "uid" | "groups">,
): boolean {
  const mode = info.mode ?? 0o777;
  if (info.uid === user.uid) return (mode & 0o100) !== 0;
  if (info.gid !== null && user.groups.includes(info.gid)) return (mode & 0o010) !== 0;
  return (mode & 0o001) !== 0;
}

/** The argv prefix that runs a command as `user` (pure). */
export function runAsPrefix(user: RunAsUser): string[] {
  return [user.setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--"];
}

/** `id FLAG -- name`: the numbers it prints, or undefined when there is no such user. */
async function idOf(name: string, flag: "-u" | "-g" | "-G"): Promise<number[] | undefined> {
  const ids = (await id(name, flag))?.split(/\s+/).map(Number);
  return ids !== undefined && ids.length > 0 && ids.every(Number.isSafeInteger) ? ids : undefined;
}

/** What `id FLAG -- name` prints (trimmed), or undefined when it fails. */
async function id(name: string, flag: string): Promise<string | undefined> {
  const output = await new Deno.Command("id", {
    args: [flag, "--", name],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  return output.success && text !== "" ? text : undefined;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
