/**
 * A prepared statement whose errors are the store's own: a write the disk
 * refused becomes a StoreFullError (see disk_errors.ts) wherever in the
 * store it happens, and the first write that reaches the disk again ends
 * the refusing state. Statements, not `exec()`, carry SQLite's error code,
 * which is why even BEGIN and COMMIT go through here.
 *
 * @module
 */
import type {
  DatabaseSync,
  SQLInputValue,
  SQLOutputValue,
  StatementResultingChanges,
  StatementSync,
} from "node:sqlite";
import type { DiskWatch } from "../disk_errors.ts";

/** The parts of a prepared statement the store uses. */
export interface Statement {
  run(...params: SQLInputValue[]): StatementResultingChanges;
  get(...params: SQLInputValue[]): Record<string, SQLOutputValue> | undefined;
  all(...params: SQLInputValue[]): Record<string, SQLOutputValue>[];
}

/** Statements whose success, outside a transaction, means a commit reached the disk. */
const WRITES = /^\s*(INSERT|UPDATE|DELETE|REPLACE|COMMIT|END)\b/i;

/** Prepares `text` on `db`, its errors translated by `disk`. */
export function guardedStatement(db: DatabaseSync, text: string, disk: DiskWatch): Statement {
  const statement: StatementSync = db.prepare(text);
  const writes = WRITES.test(text);
  // Only while the disk refuses: one boolean test per call otherwise.
  const succeeded = () => {
    if (disk.refusing && writes && !db.isTransaction) disk.wrote();
  };
  return {
    run(...params) {
      try {
        const result = statement.run(...params);
        succeeded();
        return result;
      } catch (error) {
        throw disk.translate(error);
      }
    },
    get(...params) {
      try {
        const row = statement.get(...params);
        succeeded();
        return row;
      } catch (error) {
        throw disk.translate(error);
      }
    },
    all(...params) {
      try {
        const rows = statement.all(...params);
        succeeded();
        return rows;
      } catch (error) {
        throw disk.translate(error);
      }
    },
  };
}
