/**
 * The worker's own area under the workspace root, and the removal of what
 * dead workers left there.
 *
 * Each running worker holds one directory `worker-<16 hex>` under the root,
 * with a lock file `worker-<16 hex>.lock` beside it that it keeps locked
 * (an exclusive advisory lock, flock on Unix) for its whole life. Its jobs'
 * checkouts and spill files live in that directory. A worker killed with
 * SIGKILL cannot remove its area, but the operating system drops its lock;
 * so the next worker that starts on the same root removes every area whose
 * lock nobody holds, before it claims a job. Areas of workers still running
 * (other processes, or other workers of one `airunner dev`) stay, since
 * their locks are held.
 *
 * Only entries with exactly these names are ever touched, never a symlink,
 * and removal does not follow symlinks inside an area: whatever else the
 * root holds stays. The lock is taken before the directory exists, and
 * checked to still be the file at its path, so a cleaner can never see a
 * live worker's directory without its held lock.
 *
 * Locks are advisory and local: a root on a network file system shared by
 * hosts is not supported.
 *
 * @module
 */
import { isAbsolute, join } from "node:path";
import type { Logger } from "../logger.ts";

const AREA_NAME = /^worker-[0-9a-f]{16}$/;
const LOCK_NAME = /^worker-[0-9a-f]{16}\.lock$/;
const LOCK_SUFFIX = ".lock";

/** The directory a worker owns under the workspace root while it runs. */
export interface WorkspaceArea extends AsyncDisposable {
  /** Where this worker's checkouts and spill files go (absolute when the root is). */
  readonly dir: string;
  /** Removes the area (unless kept) and drops the lock; idempotent. */
  release(): Promise<void>;
}

/** Options of {@link claimWorkspaceArea}. */
export interface ClaimOptions {
  /**
   * Leave the areas of dead workers and this one's after it ends
   * (`--keep-workspaces`: the checkout of a crashed job is worth a look).
   */
  readonly keep: boolean;
  readonly logger: Logger;
}

/** Why the workspace root cannot be used. */
export class WorkspaceRootError extends Error {
  constructor(root: string, cause: unknown) {
    super(
      `cannot use the workspace root ${root}: ${cause instanceof Error ? cause.message : cause}`,
    );
    this.name = "WorkspaceRootError";
  }
}

/**
 * Makes the root (0700) if needed, removes the areas dead workers left
 * (unless `keep`), and claims a fresh area for this worker.
 *
 * @example
 * await using area = await claimWorkspaceArea("/tmp/airunner-workspaces", { keep: false, logger });
 * // checkouts go under area.dir
 * @throws {WorkspaceRootError} when the root is relative, or cannot be made or written.
 */
export async function claimWorkspaceArea(
  root: string,
  options: ClaimOptions,
): Promise<WorkspaceArea> {
  // Resolved against the cwd of whatever runs git, a relative root put
  // checkouts in <root>/<root>/... and jobs in an empty directory.
  if (!isAbsolute(root)) throw new WorkspaceRootError(root, "it is not an absolute path");
  try {
    await Deno.mkdir(root, { recursive: true, mode: 0o700 });
    if (!options.keep) {
      const { removed, failed } = await removeLeftoverAreas(root);
      if (removed.length > 0) {
        options.logger.info(
          { root, areas: removed },
          "removed the workspaces of workers that are no longer running",
        );
      }
      // Cleanup is worth a warning, not a worker that refuses to start.
      for (const { area, error } of failed) {
        options.logger.warn(
          { root, area, err: error },
          "could not remove the workspace of a worker that is no longer running",
        );
      }
    }
    return await newArea(root, options.keep);
  } catch (error) {
    throw new WorkspaceRootError(root, error);
  }
}

/** What {@link removeLeftoverAreas} did. */
export interface LeftoverCleanup {
  /** Areas removed (their names under the root). */
  readonly removed: string[];
  /** Areas of dead workers that could not be removed, and why. */
  readonly failed: { readonly area: string; readonly error: unknown }[];
}

/**
 * Removes every area under `root` whose lock no running worker holds, and
 * lock files left without an area. Entries it may not open (another user's)
 * are not its to remove and are skipped.
 * @throws when `root` itself cannot be read.
 */
export async function removeLeftoverAreas(root: string): Promise<LeftoverCleanup> {
  const removed = new Set<string>();
  const failed: { area: string; error: unknown }[] = [];
  const entries: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(root)) entries.push(entry);
  for (const entry of entries) {
    // readDir does not follow links: a symlink is neither file nor directory here.
    const isLock = entry.isFile && LOCK_NAME.test(entry.name);
    const isArea = entry.isDirectory && AREA_NAME.test(entry.name);
    if (!isLock && !isArea) continue;
    const area = isLock ? entry.name.slice(0, -LOCK_SUFFIX.length) : entry.name;
    try {
      if (isLock ? await removeIfUnlocked(root, area) : await removeIfLockless(root, area)) {
        removed.add(area); // once, though its lock file and directory both led here
      }
    } catch (error) {
      failed.push({ area, error });
    }
  }
  return { removed: [...removed], failed };
}

/** Takes the area's lock if nobody holds it; then removes the area and its lock file. */
async function removeIfUnlocked(root: string, area: string): Promise<boolean> {
  const lockPath = join(root, area + LOCK_SUFFIX);
  let lock: Deno.FsFile;
  try {
    lock = await Deno.open(lockPath, { read: true, write: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false; // released meanwhile
    if (error instanceof Deno.errors.PermissionDenied) return false; // another user's
    throw error;
  }
  try {
    if (!await lock.tryLock(true)) return false; // its worker is running
    const dir = await lstatOrUndefined(join(root, area));
    if (dir?.isDirectory === true) await removeTree(join(root, area));
    await Deno.remove(lockPath).catch(ignoreNotFound);
    return true;
  } finally {
    lock.close();
  }
}

/** Removes an area whose lock file is gone: its worker died while releasing it. */
async function removeIfLockless(root: string, area: string): Promise<boolean> {
  if (await lstatOrUndefined(join(root, area + LOCK_SUFFIX)) !== undefined) return false;
  await removeTree(join(root, area));
  return true;
}

async function newArea(root: string, keep: boolean): Promise<WorkspaceArea> {
  for (let tries = 0;; tries++) {
    const name = `worker-${randomHex(8)}`;
    const lockPath = join(root, name + LOCK_SUFFIX);
    const lock = await Deno.open(lockPath, {
      read: true,
      write: true,
      createNew: true,
      mode: 0o600,
    });
    // A cleaner may have opened the new file before it was locked and
    // removed it: then this lock guards nothing, and a new name is taken.
    if (await lock.tryLock(true) && await isFileAt(lock, lockPath)) {
      // For a person wondering whose area this is; the lock is what counts.
      await lock.write(new TextEncoder().encode(`${Deno.pid}\n`));
      const dir = join(root, name);
      await Deno.mkdir(dir, { mode: 0o700 });
      return area(dir, lockPath, lock, keep);
    }
    lock.close();
    if (tries >= 10) throw new Error("could not lock a workspace area (10 attempts)");
  }
}

function area(dir: string, lockPath: string, lock: Deno.FsFile, keep: boolean): WorkspaceArea {
  let released: Promise<void> | undefined;
  const release = () =>
    released ??= (async () => {
      try {
        if (!keep) await removeTree(dir);
        // The directory goes first: an area without its lock file is a dead one.
        await Deno.remove(lockPath).catch(ignoreNotFound);
      } finally {
        lock.close();
      }
    })();
  return { dir, release, [Symbol.asyncDispose]: release };
}

/** Whether `path` is still the file `file` has open (same device and inode). */
async function isFileAt(file: Deno.FsFile, path: string): Promise<boolean> {
  const [open, named] = await Promise.all([file.stat(), lstatOrUndefined(path)]);
  if (named === undefined) return false;
  // Where the system reports no inode (Windows) this check is skipped.
  if (open.ino === null || named.ino === null) return true;
  return open.ino === named.ino && open.dev === named.dev;
}

/** Removes a directory tree; symlinks in it are removed, never followed. */
async function removeTree(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(ignoreNotFound);
}

async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}
