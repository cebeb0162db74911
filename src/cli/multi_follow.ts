/**
 * The output of many jobs on one terminal (`logs -f ID ID ...`), as pure
 * logic apart from I/O: a short name per job, a prefix per line, and whole
 * lines only, so that two jobs never share a line:
 *
 * ```text
 * 3f9a2c1d | compiling shard 1
 * 80be11c4 | compiling shard 2
 * ```
 *
 * Each job's stdout and stderr are buffered apart until a newline; what is
 * left at a job's end is written as a line of its own. A line longer than
 * {@link MAX_LINE_BYTES} is cut there, so one job cannot hold memory with
 * output that never ends a line.
 *
 * @module
 */

/** The longest line kept whole; longer ones are written in pieces of this size. */
export const MAX_LINE_BYTES = 64 * 1024;

/** Digits of a job's short name, at least (more where two jobs would share one). */
export const SHORT_ID_DIGITS = 8;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-([0-9a-f]{12})$/i;

/**
 * Short names for job ids, unique among them: the first 8 digits of a
 * UUID's last group (a UUIDv7 starts with its time, so jobs submitted
 * together share their first digits; the last group is random), more
 * digits where two would be equal, the whole id where even those are.
 * Ids that are not UUIDs are shortened from their end the same way.
 */
export function shortJobIds(ids: readonly string[]): Map<string, string> {
  const cut = (id: string, digits: number) => {
    const tail = UUID.exec(id)?.[1];
    if (tail !== undefined) return digits <= tail.length ? tail.slice(0, digits) : id;
    return digits >= id.length ? id : id.slice(-digits);
  };
  const names = new Map<string, string>();
  let left = [...new Set(ids)];
  for (let digits = SHORT_ID_DIGITS; left.length > 0; digits++) {
    const counts = new Map<string, number>();
    for (const id of left) counts.set(cut(id, digits), (counts.get(cut(id, digits)) ?? 0) + 1);
    for (const id of left) if (counts.get(cut(id, digits)) === 1) names.set(id, cut(id, digits));
    left = left.filter((id) => !names.has(id));
  }
  return names;
}

/** What `--prefix` asks for: no prefix, the short id, or a metadata value. */
export type PrefixMode =
  | { readonly kind: "none" }
  | { readonly kind: "id" }
  | { readonly kind: "metadata"; readonly key: string };

/** `--prefix none|id|KEY`. */
export function parsePrefix(value: string): PrefixMode {
  if (value === "none") return { kind: "none" };
  if (value === "id") return { kind: "id" };
  return { kind: "metadata", key: value };
}

/** A job as the prefixes need it. */
export interface LabelledJob {
  readonly jobId: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * Each job's label for `mode`, padded to one width: its short id, or its
 * value of a metadata key (its short id when it has none); "" for none.
 */
export function prefixLabels(jobs: readonly LabelledJob[], mode: PrefixMode): Map<string, string> {
  const short = shortJobIds(jobs.map((j) => j.jobId));
  const raw = jobs.map((j) => {
    if (mode.kind === "none") return [j.jobId, ""] as const;
    const value = mode.kind === "metadata" ? j.metadata[mode.key] : undefined;
    return [j.jobId, value === undefined || value === "" ? short.get(j.jobId)! : value] as const;
  });
  const width = Math.max(0, ...raw.map(([, label]) => [...label].length));
  return new Map(raw.map(([id, label]) => [id, label + " ".repeat(width - [...label].length)]));
}

/** ANSI colours of the prefixes, one per job in turn (cyan, magenta, yellow, green, blue, ...). */
const COLOURS = ["36", "35", "33", "32", "34", "96", "95", "93", "92", "94"];

/** The prefix `label | ` of the `index`th job, coloured when `colour`; "" for an empty label. */
export function linePrefix(label: string, index: number, colour: boolean): string {
  if (label === "") return "";
  const code = COLOURS[index % COLOURS.length]!;
  return colour ? `\x1b[${code}m${label}\x1b[0m | ` : `${label} | `;
}

const NEWLINE = 0x0a;

/** One stream's bytes, cut into whole lines (each with its newline). */
export class LineBuffer {
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  /** The whole lines `bytes` completes; the rest waits for its newline. */
  push(bytes: Uint8Array): Uint8Array[] {
    const lines: Uint8Array[] = [];
    let start = 0;
    for (;;) {
      const newline = bytes.indexOf(NEWLINE, start);
      const end = newline < 0 ? bytes.byteLength : newline + 1;
      let piece = bytes.subarray(start, end);
      // A line too long to hold is written in pieces, each ended by a newline.
      while (this.#pendingBytes + piece.byteLength > MAX_LINE_BYTES) {
        const room = MAX_LINE_BYTES - this.#pendingBytes;
        this.#add(piece.subarray(0, room));
        lines.push(this.#take(true));
        piece = piece.subarray(room);
      }
      this.#add(piece);
      if (newline < 0) break;
      lines.push(this.#take(false));
      start = end;
    }
    return lines;
  }

  /** What is left, ended by a newline; undefined when nothing is. */
  flush(): Uint8Array | undefined {
    return this.#pendingBytes === 0 ? undefined : this.#take(true);
  }

  #add(piece: Uint8Array): void {
    if (piece.byteLength === 0) return;
    this.#pending.push(piece.slice());
    this.#pendingBytes += piece.byteLength;
  }

  #take(addNewline: boolean): Uint8Array {
    const out = new Uint8Array(this.#pendingBytes + (addNewline ? 1 : 0));
    let offset = 0;
    for (const part of this.#pending) {
      out.set(part, offset);
      offset += part.byteLength;
    }
    if (addNewline) out[offset] = NEWLINE;
    this.#pending = [];
    this.#pendingBytes = 0;
    return out;
  }
}

/** Which of the local streams a job's line goes to. */
export type OutputStream = "stdout" | "stderr";

/** Bytes to write: to stdout, to stderr, or both. */
export interface Writes {
  readonly stdout: Uint8Array | undefined;
  readonly stderr: Uint8Array | undefined;
}

const encoder = new TextEncoder();

/**
 * The output of several jobs as prefixed whole lines: feed it each job's
 * chunks, and it says what to write where.
 */
export class PrefixedOutput {
  readonly #prefixes: Map<string, Record<OutputStream, Uint8Array>>;
  readonly #buffers = new Map<string, Record<OutputStream, LineBuffer>>();

  /** `labels` from {@link prefixLabels}, in the jobs' order (which picks their colours). */
  constructor(
    labels: ReadonlyMap<string, string>,
    colour: { readonly stdout: boolean; readonly stderr: boolean },
  ) {
    this.#prefixes = new Map(
      [...labels].map(([id, label], i) => [id, {
        stdout: encoder.encode(linePrefix(label, i, colour.stdout)),
        stderr: encoder.encode(linePrefix(label, i, colour.stderr)),
      }]),
    );
  }

  /** The whole lines of `bytes`, the job's output on `stream`, prefixed (undefined: none yet). */
  chunk(jobId: string, stream: OutputStream, bytes: Uint8Array): Uint8Array | undefined {
    const lines = this.#buffer(jobId, stream).push(bytes);
    return lines.length === 0 ? undefined : this.#prefixed(jobId, stream, lines);
  }

  /** A whole line of airunner's own about the job (`text` without its newline), prefixed. */
  line(jobId: string, stream: OutputStream, text: string): Uint8Array {
    return this.#prefixed(jobId, stream, [encoder.encode(`${text}\n`)]);
  }

  /** The job's unfinished lines, each ended (at the job's end, or between two attempts). */
  flush(jobId: string): Writes {
    const flushed = (stream: OutputStream) => {
      const rest = this.#buffers.get(jobId)?.[stream].flush();
      return rest === undefined ? undefined : this.#prefixed(jobId, stream, [rest]);
    };
    return { stdout: flushed("stdout"), stderr: flushed("stderr") };
  }

  #buffer(jobId: string, stream: OutputStream): LineBuffer {
    let buffers = this.#buffers.get(jobId);
    if (buffers === undefined) {
      buffers = { stdout: new LineBuffer(), stderr: new LineBuffer() };
      this.#buffers.set(jobId, buffers);
    }
    return buffers[stream];
  }

  #prefixed(jobId: string, stream: OutputStream, lines: readonly Uint8Array[]): Uint8Array {
    const prefix = this.#prefixes.get(jobId)?.[stream] ?? new Uint8Array();
    const out = new Uint8Array(
      lines.reduce((n, line) => n + prefix.byteLength + line.byteLength, 0),
    );
    let offset = 0;
    for (const line of lines) {
      out.set(prefix, offset);
      out.set(line, offset + prefix.byteLength);
      offset += prefix.byteLength + line.byteLength;
    }
    return out;
  }
}

/** The exit code of many jobs: the highest non-zero one, 0 when all are 0. */
export function worstExitCode(codes: Iterable<number>): number {
  let worst = 0;
  for (const code of codes) if (code > worst) worst = code;
  return worst;
}
