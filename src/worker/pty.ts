/**
 * Running a command on a pseudo-terminal without a native addon (which
 * `deno compile` could not embed): through script(1), which every Linux
 * (util-linux) and macOS ships. The command sees a terminal on stdin, stdout
 * and stderr, of the window size given; its output arrives as one stream,
 * with the terminal's CRLF line ends and colours intact.
 *
 * @module
 */

/** Window size of a pty job when its environment names none (COLUMNS, LINES). */
export const DEFAULT_WINDOW = { cols: 120, rows: 40 } as const;

/** A terminal window size. */
export interface WindowSize {
  readonly cols: number;
  readonly rows: number;
}

/** The window size for a job: its COLUMNS and LINES when they are sensible, else the default. */
export function windowSizeFor(env: Readonly<Record<string, string>>): WindowSize {
  const cols = Number(env.COLUMNS);
  const rows = Number(env.LINES);
  const sensible = (n: number) => Number.isInteger(n) && n >= 10 && n <= 1000;
  return {
    cols: sensible(cols) ? cols : DEFAULT_WINDOW.cols,
    rows: sensible(rows) ? rows : DEFAULT_WINDOW.rows,
  };
}

/** Which script(1) this system has, by how it takes a command. */
export type ScriptFlavour = "util-linux" | "bsd";

/**
 * The script(1) invocation that runs `executable args` on a pty of `size`
 * (pure). util-linux: `script -qefc CMD /dev/null` (-e passes the exit
 * code, -f flushes at once); BSD/macOS: `script -q /dev/null sh -c CMD`.
 */
export function ptyInvocation(
  flavour: ScriptFlavour,
  executable: string,
  args: readonly string[],
  size: WindowSize,
): string[] {
  const shell = `stty cols ${size.cols} rows ${size.rows} 2>/dev/null; exec ${
    [executable, ...args].map(shellQuote).join(" ")
  }`;
  return flavour === "util-linux"
    ? ["-q", "-e", "-f", "-c", shell, "/dev/null"]
    : ["-q", "/dev/null", "/bin/sh", "-c", shell];
}

/** `word` quoted for a POSIX shell. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** How script(1) on this system takes a command, or undefined where there is none. */
export function scriptFlavour(): ScriptFlavour | undefined {
  switch (Deno.build.os) {
    case "linux":
      return exists("/usr/bin/script") || exists("/bin/script") ? "util-linux" : undefined;
    case "darwin":
    case "freebsd":
      return exists("/usr/bin/script") ? "bsd" : undefined;
    default:
      return undefined;
  }
}

/** Where script(1) is, when {@link scriptFlavour} found one. */
export function scriptPath(): string {
  return exists("/usr/bin/script") ? "/usr/bin/script" : "/bin/script";
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
