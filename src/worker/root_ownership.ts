/**
 * The workspace root and its state directory (`<root>/.running`) must be
 * the worker's own: directories (not symlinks) owned by its uid that
 * neither group nor others may write. A root someone else made first (the
 * default one is under /tmp) could otherwise hold a planted ledger that
 * makes a root worker kill any process group, or symlinks that lead its
 * writes elsewhere. A worker makes what is missing (0700; `--run-as`
 * opens the root to 0711 afterwards) and refuses to start on what fails.
 *
 * @module
 */
import { isAbsolute, join } from "node:path";
import { RUNNING_DIR } from "./group_ledger.ts";
import { WorkspaceRootError } from "./workspace_root.ts";

/** Mode bits that let group or others write (and so plant or remove entries). */
const FOREIGN_WRITE = 0o022;

/**
 * What is wrong with `info` as a private directory of user `uid`, or
 * undefined when nothing is (pure). A null mode (Windows) is not checked.
 */
export function privateDirProblem(info: Deno.FileInfo, uid: number): string | undefined {
  if (info.isSymlink) return "it is a symlink";
  if (!info.isDirectory) return "it is not a directory";
  if (info.uid !== null && info.uid !== uid) {
    return `it is owned by uid ${info.uid}, not by this worker's uid ${uid}`;
  }
  const mode = info.mode === null ? 0 : info.mode & 0o7777;
  if ((mode & FOREIGN_WRITE) !== 0) {
    return `its mode ${mode.toString(8).padStart(4, "0")} lets group or others write to it`;
  }
  return undefined;
}

/**
 * Makes `path` (mode 0700, parents too) unless it exists, then checks it
 * is a private directory of `uid`.
 * @throws {Error} naming what is wrong with it.
 */
export async function ensurePrivateDir(path: string, uid: number): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    await Deno.mkdir(path, { recursive: true, mode: 0o700 });
    info = await Deno.lstat(path);
  }
  const problem = privateDirProblem(info, uid);
  if (problem !== undefined) throw new Error(`${path}: ${problem}`);
}

/**
 * Readies the workspace root and its state directory for a worker running
 * as `uid` (null where no uid is known, as on Windows: nothing is checked
 * then, only made).
 * @throws {WorkspaceRootError} when either is not the worker's own.
 */
export async function secureWorkspaceRoot(root: string, uid: number | null): Promise<void> {
  if (!isAbsolute(root)) throw new WorkspaceRootError(root, "it is not an absolute path");
  try {
    if (uid === null) {
      await Deno.mkdir(join(root, RUNNING_DIR), { recursive: true, mode: 0o700 });
      return;
    }
    await ensurePrivateDir(root, uid);
    await ensurePrivateDir(join(root, RUNNING_DIR), uid);
  } catch (error) {
    throw new WorkspaceRootError(
      root,
      error instanceof Error && !(error instanceof Deno.errors.PermissionDenied)
        ? `${error.message}; remove it, or pass a --workspace-root only this user can write`
        : error,
    );
  }
}
