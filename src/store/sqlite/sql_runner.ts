/**
 * How the SQLite store runs SQL: prepared statements cached by their text,
 * each reporting a refused write to the disk watch (guarded_statement.ts),
 * and transactions that commit whole or not at all.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { DiskWatch } from "../disk_errors.ts";
import { guardedStatements, type Statement } from "./guarded_statement.ts";

/** Statements and transactions on one database. */
export class SqlRunner {
  readonly #db: DatabaseSync;
  readonly #prepare: (text: string) => Statement;
  readonly #statements = new Map<string, Statement>();
  readonly #onRollbackError: (error: unknown) => void;

  /** `onRollbackError` is told of a ROLLBACK that failed (the write's own error is thrown). */
  constructor(db: DatabaseSync, disk: DiskWatch, onRollbackError: (error: unknown) => void) {
    this.#db = db;
    this.#prepare = guardedStatements(db, disk);
    this.#onRollbackError = onRollbackError;
  }

  /** The prepared statement of `text`, prepared once. */
  sql(text: string): Statement {
    let statement = this.#statements.get(text);
    if (statement === undefined) {
      statement = this.#prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }

  /**
   * Runs `work` in one immediate transaction, committed when it returns and
   * rolled back when it throws; inside a transaction already, `work` joins it.
   */
  transaction<T>(work: () => T): T {
    if (this.#db.isTransaction) return work();
    this.sql("BEGIN IMMEDIATE").run();
    try {
      const result = work();
      this.sql("COMMIT").run();
      return result;
    } catch (error) {
      // SQLite ends the transaction itself after some errors (a full disk,
      // an I/O error): a ROLLBACK then fails, and its error must not hide
      // the one that matters.
      if (this.#db.isTransaction) {
        try {
          this.sql("ROLLBACK").run();
        } catch (rollbackError) {
          this.#onRollbackError(rollbackError);
        }
      }
      throw error;
    }
  }
}
