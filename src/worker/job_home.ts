/**
 * A job's home when it runs as another user (`--run-as`): a fresh directory
 * under the workspace root, owned by that user, which is its HOME and, when
 * the job names no working directory, where it runs; for a job with a
 * repository, the checkout itself, which git made as the user.
 *
 * @module
 */
import { dirname, relative } from "node:path";
import type { RunAsUser } from "./run_as.ts";
import type { Workspace } from "./workspace.ts";

/**
 * Makes an empty home for a job without a repository, named like a checkout
 * (`<job>-<attempt>-XXXX`) so that workspace cleanup treats both alike.
 */
export async function createJobHome(
  root: string,
  name: string,
  user: RunAsUser,
  keep: boolean,
): Promise<Workspace> {
  const dir = await Deno.makeTempDir({ dir: root, prefix: `${name}-` });
  await Deno.chown(dir, user.uid, user.gid);
  return {
    dir,
    remove: keep
      ? () => Promise.resolve()
      : () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}

/**
 * Lets every user through (search, not list: `o+x`, `g+x`) each directory
 * between `root` and `dir`, so the user a job runs as can reach its home by
 * its path (`cd "$HOME"`), whatever layout the workspace root has (a
 * per-worker area of mode 0700, say). `root` itself is readied at start.
 */
export async function letThrough(root: string, dir: string): Promise<void> {
  for (let parent = dirname(dir); isInside(root, parent); parent = dirname(parent)) {
    const info = await Deno.lstat(parent);
    if (!info.isDirectory || info.mode === null) return; // never through a symlink
    if ((info.mode & 0o011) !== 0o011) await Deno.chmod(parent, (info.mode & 0o7777) | 0o011);
  }
}

function isInside(root: string, path: string): boolean {
  const inside = relative(root, path);
  return inside !== "" && !inside.startsWith("..") && !inside.startsWith("/");
}

/**
 * The environment of a job run as `user` (pure): HOME, USER and LOGNAME
 * name the user and its home, unless the job set them itself.
 */
export function withIdentity(
  env: Readonly<Record<string, string>>,
  own: Readonly<Record<string, string>>,
  user: Pick<RunAsUser, "name">,
  home: string,
): Record<string, string> {
  const identity: Record<string, string> = { HOME: home, USER: user.name, LOGNAME: user.name };
  const result = { ...env };
  for (const [key, value] of Object.entries(identity)) {
    if (own[key] === undefined) result[key] = value;
  }
  return result;
}
