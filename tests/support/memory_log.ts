/**
 * A logger that keeps its lines in memory, for tests that check what was
 * logged (and so that tests print nothing).
 *
 * @module
 */
import { createLogger, type Logger } from "../../src/logger.ts";

export interface MemoryLog {
  readonly logger: Logger;
  /** Parsed log records, oldest first. */
  records(): Record<string, unknown>[];
}

export function memoryLog(): MemoryLog {
  const lines: string[] = [];
  const logger = createLogger({
    level: "debug",
    destination: { write: (line: string) => void lines.push(line) },
  });
  return {
    logger,
    records: () =>
      lines.flatMap((l) => l.split("\n")).filter((l) => l !== "").map((l) => JSON.parse(l)),
  };
}
