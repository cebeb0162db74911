/**
 * The data directory of a durable server: where it is by default, the lock
 * that keeps a second server out, and the persisted task-token secret that
 * lets workers keep their leases across a restart.
 *
 * Layout of a data dir:
 *   airunner.db (+ -wal, -shm)  jobs and events (SQLite)
 *   airunner.lock               held by the running server
 *   token-secret                32 random bytes, mode 0600
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import type { Clock } from "../clock.ts";
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
}

/**
 * Takes the data dir's lock, or fails at once when another process (or
 * another store in this one) holds it. The lock is an SQLite database in
 * exclusive locking mode: the OS drops it when the holder dies, even by
 * kill -9, and it leaves airunner.db itself readable for backups.
 */
export function lockDataDir(dir: string): DataDirLock {
  const path = join(dir, "airunner.lock");
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path);
    db.exec("PRAGMA busy_timeout = 0; PRAGMA locking_mode = EXCLUSIVE");
    db.exec("CREATE TABLE IF NOT EXISTS holder (pid INTEGER)");
    db.exec("BEGIN EXCLUSIVE");
    db.exec(`DELETE FROM holder; INSERT INTO holder VALUES (${Deno.pid})`);
    db.exec("COMMIT");
  } catch (error) {
    db?.close();
    const message = error instanceof Error ? error.message : String(error);
    if (/locked|busy/i.test(message)) {
      throw new DataDirError(
        `data dir ${dir} is in use by another airunner server (stop it, or use another --data-dir)`,
      );
    }
    throw error;
  }
  const held = db;
  return { release: () => held.close() };
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
  // createNew: two starting servers cannot both write one.
  await Deno.writeFile(path, secret, { mode: 0o600, createNew: true });
  return secret;
}

/** Options of {@link openDataDirStore}. */
export interface DataDirStoreOptions {
  readonly clock?: Clock;
  readonly retentionMs?: number;
  /** Most output bytes a job stores (0: no cap; the store's default when absent). */
  readonly maxJobOutputBytes?: number;
  readonly onBackgroundError?: (error: unknown) => void;
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
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
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
      onClose: () => lock.release(),
    });
    return store;
  } catch (error) {
    lock.release();
    throw error;
  }
}
