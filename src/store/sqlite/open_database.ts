/**
 * Opening the SQLite database file for the store: busy timeout, migration,
 * WAL mode, and the fallback for a disk too full for WAL's shared memory.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { type DiskWatch, isDiskRefusal } from "../disk_errors.ts";
import { migrate } from "./schema.ts";

/**
 * Opens the database for the store. A disk with no room for the 32 KiB
 * shared-memory file of WAL mode (missing after a clean shutdown) fails
 * even reads; the database is then opened in exclusive locking mode, which
 * keeps that index in this process's memory, so reads and (once space is
 * freed) writes work, while other processes (`airunner backup`) wait until
 * the next restart.
 */
export function openDatabase(path: string, disk: DiskWatch): DatabaseSync {
  try {
    return openDatabaseWith(path, false);
  } catch (error) {
    if (!isDiskRefusal(error)) throw error;
    let db;
    try {
      db = openDatabaseWith(path, true);
    } catch (again) {
      throw disk.translate(again);
    }
    disk.refused(
      error,
      "no room for its -shm file: opened for this server process alone; airunner backup cannot read it until the server restarts with space free",
    );
    return db;
  }
}

function openDatabaseWith(path: string, exclusive: boolean): DatabaseSync {
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    if (exclusive) db.exec("PRAGMA locking_mode = EXCLUSIVE");
    migrate(db, path);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
    return db;
  } catch (error) {
    try {
      db.close();
    } catch {
      // The error that made us close is the one to report.
    }
    throw error;
  }
}
