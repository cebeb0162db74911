/**
 * A consistent copy of a live SQLite store, with SQLite's online backup
 * API. WAL mode lets it read while the server writes; all pages are copied
 * in one step, so the copy is one transaction's snapshot. (`VACUUM INTO`
 * would need ATTACH, which Deno allows only with full permissions.)
 *
 * @module
 */
import { backup, DatabaseSync } from "node:sqlite";
import { DataDirError } from "./schema.ts";

/** Copies the database at `dbPath` to the new file `outPath` (which must not exist). */
export async function backupDatabase(dbPath: string, outPath: string): Promise<void> {
  try {
    await Deno.stat(dbPath);
  } catch {
    throw new DataDirError(`no airunner database at ${dbPath}`);
  }
  try {
    await Deno.lstat(outPath);
    throw new DataDirError(`${outPath} exists already; choose a new file for the backup`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    await backup(db, outPath, { rate: -1 });
  } finally {
    db.close();
  }
}
