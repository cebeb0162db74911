/**
 * Files that hold job data (environments, output) are readable by their
 * owner only: created with mode 0600 from the start, never 0644 first and
 * tightened later. SQLite gives a database's -wal, -shm and -journal files
 * the database file's own mode, so creating the (empty) database file 0600
 * before SQLite opens it covers them too.
 *
 * @module
 */

/** The mode of every file airunner writes with job data in it. */
export const PRIVATE_FILE_MODE = 0o600;

/** Modes are POSIX; on Windows the directory's ACL decides. */
const HAS_MODES = Deno.build.os !== "windows";

/**
 * Creates `path` empty with mode 0600 (whatever the umask); returns false,
 * changing nothing, when it exists already.
 */
export function createPrivateFile(path: string): boolean {
  try {
    Deno.openSync(path, { write: true, createNew: true, mode: PRIVATE_FILE_MODE }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  }
}

/** A file whose mode was tightened, with the mode it had. */
export interface TightenedFile {
  readonly path: string;
  readonly fromMode: number;
}

/**
 * Makes the SQLite database at `path` private before it is opened: created
 * empty 0600 when missing, and, with its -wal, -shm and -journal files,
 * chmod 0600 when group or others could read or write it (a database an
 * older airunner made, or a copy put in place by hand). Returns what it
 * tightened, for a log line.
 */
export function preparePrivateDatabase(path: string): TightenedFile[] {
  if (createPrivateFile(path) || !HAS_MODES) return [];
  const tightened: TightenedFile[] = [];
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    let mode: number | null;
    try {
      mode = Deno.statSync(file).mode;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    if (mode === null || (mode & 0o077) === 0) continue;
    Deno.chmodSync(file, PRIVATE_FILE_MODE);
    tightened.push({ path: file, fromMode: mode & 0o777 });
  }
  return tightened;
}
