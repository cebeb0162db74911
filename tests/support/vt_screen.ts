/**
 * What a terminal shows after a stream of output (pure): a small VT100
 * renderer for the sequences airunner writes (cursor moves, erases, the
 * alternate screen, scroll regions), so a test reads the screen a person
 * sees instead of the bytes. Unknown sequences are skipped.
 *
 * @module
 */

/** A control sequence: ESC [ (private marker) parameters final letter. */
// deno-lint-ignore no-control-regex -- the escape character is what is matched
const CSI = /^\x1b\[([?]?)([\d;]*)([A-Za-z])/;

/** The screen of a `columns` x `rows` terminal after `output`, one string per row, right-trimmed. */
export function renderScreen(output: string, columns = 100, rows = 30): string[] {
  const blank = () => Array.from({ length: rows }, () => Array<string>(columns).fill(" "));
  let main = blank();
  let alternate: string[][] | undefined;
  let row = 0;
  let col = 0;
  const screen = () => alternate ?? main;
  const lineFeed = () => {
    if (row < rows - 1) row++;
    else screen().push(screen().shift()!.fill(" "));
  };
  for (let i = 0; i < output.length; i++) {
    const ch = output[i]!;
    if (ch === "\x1b") {
      const csi = CSI.exec(output.slice(i, i + 24));
      if (csi === null) {
        i += output[i + 1] === "7" || output[i + 1] === "8" ? 1 : 0;
        continue;
      }
      i += csi[0].length - 1;
      const [, privateMode, params, op] = csi;
      const n = params!.split(";").map((p) => Number(p || "0"));
      if (privateMode === "?") {
        if (params === "1049" && op === "h") alternate = blank();
        if (params === "1049" && op === "l") alternate = undefined;
        continue;
      }
      if (op === "H") {
        row = Math.max(0, (n[0] || 1) - 1);
        col = Math.max(0, (n[1] || 1) - 1);
      } else if (op === "K") {
        const line = screen()[row]!;
        const from = n[0] === 2 ? 0 : col;
        for (let c = from; c < columns; c++) line[c] = " ";
      } else if (op === "J") {
        for (let c = col; c < columns; c++) screen()[row]![c] = " ";
        for (let r = row + 1; r < rows; r++) screen()[r]!.fill(" ");
        if (n[0] === 2) main = alternate === undefined ? blank() : main;
      }
      continue;
    }
    if (ch === "\r") col = 0;
    else if (ch === "\n") {
      col = 0; // a pty's ONLCR turns \n into \r\n
      lineFeed();
    } else if (ch >= " ") {
      if (col >= columns) {
        col = 0;
        lineFeed();
      }
      screen()[row]![col++] = ch;
    }
  }
  return screen().map((line) => line.join("").trimEnd());
}
