/**
 * The data directory of a durable server: where it is by default, the lock
 * that keeps a second server out, and the persisted task-token secret that
 * lets workers keep their leases across a restart.
 *
 * Layout of a data dir (mode 0700 when airunner creates it; every file in
 * it 0600, since jobs carry environments and output):
 *   airunner.db (+ -wal, -shm)  jobs and events (SQLite)
 *   airunner.lock               held by the running server
 *   token-secret                32 random bytes
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import type { Clock } from "../clock.ts";
import { type DiskNotice, isDiskRefusal } from "./disk_errors.ts";
import { StoreFullError } from "./errors.ts";
import { createPrivateFile, PRIVATE_FILE_MODE } from "./private_files.ts";
import { DataDirError } from "./sqlite/schema.ts";
import { SqliteJobStore } from "./sqlite/sqlite_store.ts";
import { MIN_SECRET_BYTES, TaskTokenCodec } from "./task_token.ts";

/** The platform's per-user data directory for airunner. */
export function defaultDataDir(env: (name: string) => string | undefined = Deno.env.get): string {
  const home = env("HOME") ?? env("USERPROFILE") ?? ".";
  switch (Deno.build.os) {
    case "darwin":
      return join(home, "Library", "Application Support", "airunner");
    case "windows":
      return join(env("LOCALAPPDATA") ?? join(home, "AppData", "Local"), "airunner");
    default:
      return join(env("XDG_DATA_HOME") ?? join(home, ".local", "share"), "airunner");
  }
}

/** A held data-dir lock; release it by closing. */
export interface DataDirLock {
  release(): void;
  /** Why the holder's pid could not be written (a full disk), if it could not; the lock holds all the same. */
  readonly refusedWrite?: unknown;
}

/**
 * Takes the data dir's lock, or fails at once when another process (or
 * another store in this one) holds it. The lock is an SQLite database in
 * exclusive locking mode: the OS drops it when the holder dies, even by
 * kill -9, and it leaves airunner.db itself readable for backups.
 *
 * On a full disk the lock is taken all the same (BEGIN EXCLUSIVE writes
 * nothing, and exclusive locking mode keeps the lock after a failed
 * write); only the holder's pid, which is for people, stays the old one.
 * @throws {StoreFullError} when the disk has no room for a new lock file.
 */
export function lockDataDir(dir: string): DataDirLock {
  const path = join(dir, "airunner.lock");
  let db: DatabaseSync | undefined;
  let refusedWrite: unknown;
  try {
    createPrivateFile(path);
    db = new DatabaseSync(path);
    db.exec("PRAGMA busy_timeout = 0; PRAGMA locking_mode = EXCLUSIVE");
    db.exec("CREATE TABLE IF NOT EXISTS holder (pid INTEGER)");
    db.exec("BEGIN EXCLUSIVE");
    try {
      // Statements rather than exec(): their errors carry SQLite's code.
      db.prepare("DELETE FROM holder").run();
      db.prepare("INSERT INTO holder VALUES (?)").run(Deno.pid);
      db.prepare("COMMIT").run();
    } catch (error) {
      if (!isDiskRefusal(error)) throw error;
      if (db.isTransaction) db.exec("ROLLBACK");
      refusedWrite = error;
    }
  } catch (error) {
    db?.close();
    const message = error instanceof Error ? error.message : String(error);
    if (/locked|busy/i.test(message)) {
      throw new DataDirError(
        `data dir ${dir} is in use by another airunner server (stop it, or use another --data-dir)`,
      );
    }
    if (isDiskRefusal(error)) throw new StoreFullError(dir, { cause: error });
    throw error;
  }
  const held = db;
  return {
    release: () => held.close(),
    ...(refusedWrite === undefined ? {} : { refusedWrite }),
  };
}

/**
 * The task-token signing secret: AIRUNNER_TOKEN_SIGNING_SECRET when set (at
 * least 32 bytes), else `token-secret` in the data dir, created with mode
 * 0600 on first start.
 */
export async function loadTokenSecret(
  dir: string,
  env: (name: string) => string | undefined = Deno.env.get,
): Promise<Uint8Array> {
  const fromEnv = env("AIRUNNER_TOKEN_SIGNING_SECRET");
  if (fromEnv !== undefined && fromEnv !== "") {
    const bytes = new TextEncoder().encode(fromEnv);
    if (bytes.byteLength < MIN_SECRET_BYTES) {
      throw new DataDirError(
        `AIRUNNER_TOKEN_SIGNING_SECRET is ${bytes.byteLength} bytes; it must be at least ${MIN_SECRET_BYTES}`,
      );
    }
    return bytes;
  }
  const path = join(dir, "token-secret");
  try {
    const secret = await Deno.readFile(path);
    if (secret.byteLength < MIN_SECRET_BYTES) {
      throw new DataDirError(
        `${path} holds ${secret.byteLength} bytes; it must be at least ${MIN_SECRET_BYTES}`,
      );
    }
    return secret;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const secret = crypto.getRandomValues(new Uint8Array(MIN_SECRET_BYTES));
  try {
    // createNew: two starting servers cannot both write one.
    await Deno.writeFile(path, secret, { mode: PRIVATE_FILE_MODE, createNew: true });
  } catch (error) {
    // A short file (the disk filled up) would stop every later start.
    if (!(error instanceof Deno.errors.AlreadyExists)) await Deno.remove(path).catch(() => {});
    if (isDiskRefusal(error)) throw new StoreFullError(dir, { cause: error });
    throw error;
  }
  return secret;
}

/** Options of {@link openDataDirStore}. */
export interface DataDirStoreOptions {
  readonly clock?: Clock;
  readonly retentionMs?: number;
  /** Most output bytes a job stores (0: no cap; the store's default when absent). */
  readonly maxJobOutputBytes?: number;
  readonly onBackgroundError?: (error: unknown) => void;
  readonly onDiskNotice?: (notice: DiskNotice) => void;
  readonly env?: (name: string) => string | undefined;
}

/**
 * Opens the durable store of data dir `dir` (created, mode 0700, when
 * missing): takes its lock, loads its token secret and opens airunner.db.
 * Closing the store releases the lock.
 */
export async function openDataDirStore(
  dir: string,
  options: DataDirStoreOptions = {},
): Promise<SqliteJobStore> {
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    if (isDiskRefusal(error)) throw new StoreFullError(dir, { cause: error });
    throw error;
  }
  const lock = lockDataDir(dir);
  try {
    const secret = await loadTokenSecret(dir, options.env);
    const store = SqliteJobStore.open({
      path: join(dir, "airunner.db"),
      tokenCodec: new TaskTokenCodec(secret),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.retentionMs === undefined ? {} : { retentionMs: options.retentionMs }),
      ...(options.maxJobOutputBytes === undefined
        ? {}
        : { maxJobOutputBytes: options.maxJobOutputBytes }),
      ...(options.onBackgroundError === undefined
        ? {}
        : { onBackgroundError: options.onBackgroundError }),
      ...(options.onDiskNotice === undefined ? {} : { onDiskNotice: options.onDiskNotice }),
      ...(lock.refusedWrite === undefined ? {} : { diskRefusedAtStart: lock.refusedWrite }),
      onClose: () => lock.release(),
    });
    return store;
  } catch (error) {
    lock.release();
    throw error;
  }
}
