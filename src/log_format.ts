/**
 * Log lines for people: on a terminal, each JSON record pino writes becomes
 * one readable line, `12:04:05.123 INFO  job started jobId=… pid=4242`.
 * Pure formatting, apart from the writer at the bottom.
 *
 * @module
 */

const LEVEL_NAMES: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO ",
  40: "WARN ",
  50: "ERROR",
  60: "FATAL",
};

const LEVEL_COLORS: Record<number, string> = {
  10: "\x1b[90m",
  20: "\x1b[36m",
  30: "\x1b[32m",
  40: "\x1b[33m",
  50: "\x1b[31m",
  60: "\x1b[35m",
};

/** Fields every record has that the readable line shows in its own way or omits. */
const OMITTED = new Set(["level", "time", "msg", "pid", "hostname", "err"]);

/** One pino JSON line as a readable line (without the newline); non-JSON text passes through. */
export function formatLogLine(json: string, color: boolean): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json);
  } catch {
    return json;
  }
  const level = Number(record.level);
  const time = new Date(Number(record.time));
  const clock = Number.isNaN(time.getTime()) ? "" : time.toISOString().slice(11, 23);
  const name = LEVEL_NAMES[level] ?? String(record.level);
  const paint = (text: string, code: string | undefined) =>
    color && code !== undefined ? `${code}${text}\x1b[0m` : text;
  const fields = Object.entries(record)
    .filter(([key]) => !OMITTED.has(key))
    .map(([key, value]) => `${paint(key, "\x1b[90m")}=${fieldValue(value)}`);
  const err = record.err as { message?: unknown; stack?: unknown } | undefined;
  const error = err === undefined ? "" : ` ${paint(String(err.message ?? ""), "\x1b[31m")}`;
  return [paint(clock, "\x1b[90m"), paint(name, LEVEL_COLORS[level]), String(record.msg ?? "")]
    .join(" ") + error + (fields.length > 0 ? ` ${fields.join(" ")}` : "");
}

function fieldValue(value: unknown): string {
  if (typeof value === "string") return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/** A pino destination that writes readable lines to stderr. */
export function readableStderr(color: boolean): { write(line: string): void } {
  const encoder = new TextEncoder();
  return {
    write(chunk: string) {
      for (const line of chunk.split("\n")) {
        if (line !== "") Deno.stderr.writeSync(encoder.encode(`${formatLogLine(line, color)}\n`));
      }
    },
  };
}
