/**
 * What the CLI does differently on a terminal: a spinner while waiting,
 * colours (unless NO_COLOR), a header that stays in place, and a full-screen
 * view that gives the terminal back as it found it.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Whether stdout is a terminal. */
export function stdoutIsTerminal(): boolean {
  return Deno.stdout.isTerminal();
}

/** Whether stderr is a terminal. */
export function stderrIsTerminal(): boolean {
  return Deno.stderr.isTerminal();
}

/** Whether to colour output written to a terminal (NO_COLOR turns it off; https://no-color.org). */
export function colourEnabled(env: (name: string) => string | undefined = Deno.env.get): boolean {
  const noColor = env("NO_COLOR");
  return noColor === undefined || noColor === "";
}

/** ANSI styles, or nothing when colour is off. */
export function styles(enabled: boolean) {
  const wrap = (code: string) => (text: string) => enabled ? `\x1b[${code}m${text}\x1b[0m` : text;
  return {
    bold: wrap("1"),
    dim: wrap("2"),
    red: wrap("31"),
    green: wrap("32"),
    yellow: wrap("33"),
  };
}

/** Writes text to stderr without waiting on it. */
export function writeErr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

/**
 * Shows `text()` after a spinner on stderr, redrawn every 100 ms, when stderr
 * is a terminal; returns a function that clears it. Nothing happens off a
 * terminal, so scripts see no extra output.
 */
export function startSpinner(text: () => string): () => void {
  if (!stderrIsTerminal()) return () => {};
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let frame = 0;
  const draw = () => writeErr(`\r\x1b[2K${frames[frame++ % frames.length]} ${text()}`);
  draw();
  const timer = setInterval(draw, 100);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    writeErr("\r\x1b[2K");
  };
}

/** Escape sequences for full-screen and scrolling-region views. */
export const ansi = {
  alternateScreen: "\x1b[?1049h",
  mainScreen: "\x1b[?1049l",
  hideCursor: "\x1b[?25l",
  showCursor: "\x1b[?25h",
  clearScreen: "\x1b[2J\x1b[H",
  home: "\x1b[H",
  clearLine: "\x1b[2K",
  /** Erases from the cursor to the end of its line. */
  clearToEnd: "\x1b[K",
  clearBelow: "\x1b[J",
  saveCursor: "\x1b7",
  restoreCursor: "\x1b8",
  /** Lines `top`..`bottom` (1-based) scroll; the rest stays put. */
  scrollRegion: (top: number, bottom: number) => `\x1b[${top};${bottom}r`,
  resetScrollRegion: "\x1b[r",
  moveTo: (row: number, col: number) => `\x1b[${row};${col}H`,
} as const;

/** The terminal's size, or 80 x 24 when it cannot be told. */
export function terminalSize(): { columns: number; rows: number } {
  try {
    return Deno.consoleSize();
  } catch {
    return { columns: 80, rows: 24 };
  }
}

/** "12s", "3m05s", "2h14m": a short elapsed time. */
export function formatElapsed(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86_400) {
    return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  }
  return `${Math.floor(s / 86_400)}d${String(Math.floor(s / 3600) % 24).padStart(2, "0")}h`;
}
