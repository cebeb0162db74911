/**
 * Prepared statements whose errors are the store's own: a write the disk
 * refused becomes a StoreFullError (see disk_errors.ts) wherever in the
 * store it happens, and the first change that reaches the disk again ends
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

type Kind = "read" | "write" | "begin" | "commit" | "rollback";

function kindOf(text: string): Kind {
  const verb = /^\s*([A-Za-z]+)/.exec(text)?.[1]?.toUpperCase();
  switch (verb) {
    case "INSERT":
    case "UPDATE":
    case "DELETE":
    case "REPLACE":
      return "write";
    case "BEGIN":
      return "begin";
    case "COMMIT":
    case "END":
      return "commit";
    case "ROLLBACK":
      return "rollback";
    default:
      return "read";
  }
}

/**
 * A `prepare` for `db` whose statements report to `disk`. A write proves
 * the disk takes writes again only when it changed rows and was committed
 * (an UPDATE that matched nothing, or a transaction that wrote nothing,
 * commits on a full disk too), so changes are counted per transaction.
 */
export function guardedStatements(
  db: DatabaseSync,
  disk: DiskWatch,
): (text: string) => Statement {
  let uncommittedChanges = 0;
  const changed = (kind: Kind, changes: number) => {
    // Only while the disk refuses: one boolean test per call otherwise.
    if (!disk.refusing) return;
    if (kind === "write") {
      if (db.isTransaction) uncommittedChanges += changes;
      else if (changes > 0) disk.wrote();
    } else if (kind === "commit") {
      if (uncommittedChanges > 0) disk.wrote();
      uncommittedChanges = 0;
    } else if (kind !== "read") {
      uncommittedChanges = 0;
    }
  };
  return (text) => {
    const statement: StatementSync = db.prepare(text);
    const kind = kindOf(text);
    return {
      run(...params) {
        try {
          const result = statement.run(...params);
          changed(kind, Number(result.changes));
          return result;
        } catch (error) {
          throw disk.translate(error);
        }
      },
      get(...params) {
        try {
          const row = statement.get(...params);
          changed(kind, row === undefined ? 0 : 1);
          return row;
        } catch (error) {
          throw disk.translate(error);
        }
      },
      all(...params) {
        try {
          const rows = statement.all(...params);
          // Rows of a write come from RETURNING: one per changed row.
          changed(kind, rows.length);
          return rows;
        } catch (error) {
          throw disk.translate(error);
        }
      },
    };
  };
}
