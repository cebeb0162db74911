/**
 * Recognising a disk that refuses writes, from the errors SQLite and the
 * OS raise, and keeping track of when a store's disk turns full and when it
 * takes writes again, so each turn is told once (not once per request of a
 * flood).
 *
 * @module
 */
import { StoreFullError } from "./errors.ts";
import type { TightenedFile } from "./private_files.ts";

/** SQLite's primary result codes (the low byte of an extended code) of a write the disk refused. */
const SQLITE_IOERR = 10;
const SQLITE_FULL = 13;

/**
 * Whether `error` is SQLite's or the OS's report of a write the disk
 * refused: SQLITE_FULL, SQLITE_IOERR with any extended code (a missing
 * shared-memory file that cannot be sized is SQLITE_IOERR_SHMSIZE), or ENOSPC.
 *
 * node:sqlite in Deno puts the (extended) code on statement errors as
 * `errcode`; errors of `exec()` carry only the message, SQLite's fixed text
 * for the code, so that text is the fallback.
 */
export function isDiskRefusal(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { errcode, code } = error as { errcode?: unknown; code?: unknown };
  if (typeof errcode === "number") {
    const primary = errcode & 0xff;
    return primary === SQLITE_FULL || primary === SQLITE_IOERR;
  }
  if (code === "ENOSPC") return true;
  return code === "ERR_SQLITE_ERROR" &&
    (error.message === "database or disk is full" || error.message === "disk I/O error");
}

/** A turn of a store's disk, or a change made to its files at open, told to whoever logs it. */
export type DiskNotice =
  | { readonly kind: "modes_tightened"; readonly files: readonly TightenedFile[] }
  | {
    readonly kind: "writes_refused";
    readonly dir: string;
    /** The first refusal, as SQLite or the OS raised it. */
    readonly cause: unknown;
    /** What else the refusal changed, for the log line (empty when nothing). */
    readonly detail: string;
  }
  | { readonly kind: "writes_resumed"; readonly dir: string };

/**
 * Whether the disk of the store in `dir` currently refuses writes. Writes
 * go on being tried as usual (the first one that succeeds ends the state):
 * nothing here blocks or polls.
 */
export class DiskWatch {
  #refusing = false;

  constructor(
    readonly dir: string,
    readonly notify: (notice: DiskNotice) => void,
  ) {}

  /** Whether the last write was refused and none has succeeded since. */
  get refusing(): boolean {
    return this.#refusing;
  }

  /**
   * The error to throw for `error`: a {@link StoreFullError} when the disk
   * refused the write (told once, when the disk turns full), else `error`.
   */
  translate(error: unknown): unknown {
    if (error instanceof StoreFullError || !isDiskRefusal(error)) return error;
    this.refused(error);
    return new StoreFullError(this.dir, { cause: error });
  }

  /** Records a refusal (told only if writes worked until now). */
  refused(cause: unknown, detail = ""): void {
    if (this.#refusing) return;
    this.#refusing = true;
    this.notify({ kind: "writes_refused", dir: this.dir, cause, detail });
  }

  /** Records a write that reached the disk (told only if writes were refused until now). */
  wrote(): void {
    if (!this.#refusing) return;
    this.#refusing = false;
    this.notify({ kind: "writes_resumed", dir: this.dir });
  }
}
