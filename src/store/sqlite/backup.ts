/**
 * A consistent copy of a live SQLite store, with SQLite's online backup
 * API. WAL mode lets it read while the server writes; all pages are copied
 * in one step, so the copy is one transaction's snapshot. (`VACUUM INTO`
 * would need ATTACH, which Deno allows only with full permissions.)
 *
 * The copy holds what the store holds (job environments, output), so it is
 * created mode 0600 before a byte is written, like the store itself.
 *
 * @module
 */
import { backup, DatabaseSync } from "node:sqlite";
import { isDiskRefusal } from "../disk_errors.ts";
import { createPrivateFile } from "../private_files.ts";
import { DataDirError } from "./schema.ts";

/** Copies the database at `dbPath` to the new file `outPath` (which must not exist), mode 0600. */
export async function backupDatabase(dbPath: string, outPath: string): Promise<void> {
  try {
    await Deno.stat(dbPath);
  } catch {
    throw new DataDirError(`no airunner database at ${dbPath}`);
  }
  // Created empty here, not by SQLite (which would make it 0644); SQLite
  // then writes into it, and gives its journal the same mode.
  let created: boolean;
  try {
    created = createPrivateFile(outPath);
  } catch (error) {
    throw new DataDirError(`cannot create ${outPath}: ${(error as Error).message}`);
  }
  if (!created) {
    throw new DataDirError(`${outPath} exists already; choose a new file for the backup`);
  }
  try {
    const db = new DatabaseSync(dbPath, { readOnly: true });
    try {
      db.exec("PRAGMA busy_timeout = 5000");
      await backup(db, outPath, { rate: -1 });
    } finally {
      db.close();
    }
  } catch (error) {
    // A half-written copy is no backup, and would block the next attempt.
    await Deno.remove(outPath).catch(() => {});
    await Deno.remove(`${outPath}-journal`).catch(() => {});
    if (isDiskRefusal(error)) {
      throw new DataDirError(
        `cannot write the backup ${outPath} (${(error as Error).message}); nothing was kept`,
      );
    }
    throw error;
  }
}
