/**
 * Masking a job's secret values in its output (pure: bytes in, bytes out).
 *
 * Each occurrence of a secret's value becomes `***`, and so does each
 * non-blank line of a multi-line value on its own (tools print such a value
 * line by line, and a pty turns its "\n" into "\r\n"; a line's trailing "\r"
 * is not part of it). Overlapping or adjacent occurrences become one `***`,
 * so no part of either shows. Matching is on bytes, so a value that is not
 * ASCII is found whatever its characters, and a value split across two reads
 * of the pipe is found too: the end of a chunk that could be the start of a
 * secret is held back (at most the longest pattern minus one byte) until the
 * next chunk tells, or until {@link StreamMasker.flush}.
 *
 * One masker per stream (stdout, stderr): a secret split across two streams
 * is not one occurrence.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";

/** What every occurrence of a secret becomes. */
export const SECRET_MASK = "***";

const MASK_BYTES = new TextEncoder().encode(SECRET_MASK);
const EMPTY = new Uint8Array(0);

/**
 * The byte patterns that stand for `secrets`: each value, its "\r\n" form
 * (a pty's), and each non-blank line of a multi-line value. Longest first,
 * so the longest match at a position wins.
 */
export function secretPatterns(secrets: Iterable<string>): Uint8Array[] {
  const encoder = new TextEncoder();
  const texts = new Set<string>();
  for (const value of secrets) {
    if (value === "") continue;
    texts.add(value);
    if (!value.includes("\n")) continue;
    texts.add(value.replaceAll("\n", "\r\n"));
    for (const raw of value.split("\n")) {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      // A blank line would mask every blank run of the output and hides nothing.
      if (line.trim() !== "") texts.add(line);
    }
  }
  return [...texts].map((text) => encoder.encode(text)).sort((a, b) => b.byteLength - a.byteLength);
}

/**
 * Masks one stream. `push` each chunk as it is read and pass on what it
 * returns; `flush` at the end of the stream (or when held-back bytes must go
 * out now) and pass that on too. With no patterns every chunk is returned
 * as it came, not copied.
 */
export class StreamMasker {
  /** Patterns by their first byte, longest first. */
  readonly #byFirstByte: (Uint8Array[] | undefined)[] = Array.from(
    { length: 256 },
    () => undefined,
  );
  /** 1 for each byte a pattern starts with: the scan skips the rest in a tight loop. */
  readonly #startsPattern = new Uint8Array(256);
  /** Bytes read but not yet passed on: they may be the start of a secret. */
  #held: Uint8Array = EMPTY;
  /** Whether the output passed on so far ends in a mask that a match may extend. */
  #maskOpen = false;
  /** How many bytes at the start of #held are inside that mask. */
  #maskedHeld = 0;
  readonly #passThrough: boolean;

  constructor(patterns: readonly Uint8Array[]) {
    this.#passThrough = !patterns.some((pattern) => pattern.byteLength > 0);
    for (const pattern of [...patterns].sort((a, b) => b.byteLength - a.byteLength)) {
      if (pattern.byteLength === 0) continue;
      (this.#byFirstByte[pattern[0]!] ??= []).push(pattern);
      this.#startsPattern[pattern[0]!] = 1;
    }
  }

  /** Whether bytes are held back, waiting for the next chunk or a flush. */
  get holding(): boolean {
    return this.#held.byteLength > 0;
  }

  /** The masked output of `chunk` that can be passed on now. */
  push(chunk: Uint8Array): Uint8Array {
    if (this.#passThrough || chunk.byteLength === 0) return chunk;
    const data = this.#held.byteLength === 0 ? chunk : concatBytes([this.#held, chunk]);
    return this.#scan(data, false);
  }

  /** The held-back bytes, masked as if the stream ended here. */
  flush(): Uint8Array {
    if (this.#held.byteLength === 0) return EMPTY;
    return this.#scan(this.#held, true);
  }

  /**
   * Masks `data` up to the first position whose match is still undecided
   * (`final`: none is), passes that on and holds the rest.
   */
  #scan(data: Uint8Array, final: boolean): Uint8Array {
    const out: Uint8Array[] = [];
    // A mask still open from the previous chunk was already passed on as
    // `***`; it covers the first #maskedHeld bytes and grows over any match
    // that touches it.
    let masking = this.#maskOpen;
    let maskEnd = this.#maskedHeld;
    let emitFrom = 0;
    let stop = data.byteLength;
    const startsPattern = this.#startsPattern;
    const length = data.byteLength;
    for (let i = 0; i < length; i++) {
      // Outside a mask, bytes that start no pattern need no other look.
      if (!masking) {
        while (i < length && startsPattern[data[i]!] === 0) i++;
        if (i === length) break;
      }
      const candidates = this.#byFirstByte[data[i]!];
      let matched = 0;
      if (candidates !== undefined) {
        let undecided = false;
        for (const pattern of candidates) {
          if (data.byteLength - i >= pattern.byteLength) {
            if (matched === 0 && matchesAt(data, i, pattern, pattern.byteLength)) {
              matched = pattern.byteLength;
            }
          } else if (!final && matchesAt(data, i, pattern, data.byteLength - i)) {
            // A longer pattern may complete in the next chunk.
            undecided = true;
            break;
          }
        }
        if (undecided) {
          stop = i;
          break;
        }
      }
      if (matched > 0) {
        if (!masking) {
          if (i > emitFrom) out.push(data.subarray(emitFrom, i));
          out.push(MASK_BYTES);
          masking = true;
          maskEnd = i + matched;
        } else {
          maskEnd = Math.max(maskEnd, i + matched);
        }
      } else if (masking && i >= maskEnd) {
        masking = false;
        emitFrom = i;
      }
    }
    this.#held = stop === data.byteLength ? EMPTY : data.slice(stop);
    this.#maskOpen = masking && !final;
    this.#maskedHeld = this.#maskOpen ? maskEnd - stop : 0;
    if (!masking && stop > emitFrom) {
      // Nothing matched and nothing is held: the chunk itself goes on.
      if (emitFrom === 0 && stop === data.byteLength && out.length === 0) return data;
      out.push(data.subarray(emitFrom, stop));
    }
    if (out.length === 1) return out[0]!;
    return out.length === 0 ? EMPTY : concatBytes(out);
  }
}

/**
 * `text` with every secret of `patterns` masked (for messages, such as a
 * failed checkout's, that may quote the job's environment).
 */
export function maskSecretsInText(text: string, patterns: readonly Uint8Array[]): string {
  if (patterns.length === 0 || text === "") return text;
  const masker = new StreamMasker(patterns);
  const bytes = concatBytes([masker.push(new TextEncoder().encode(text)), masker.flush()]);
  return new TextDecoder().decode(bytes);
}

function matchesAt(data: Uint8Array, at: number, pattern: Uint8Array, length: number): boolean {
  for (let k = 1; k < length; k++) {
    if (data[at + k] !== pattern[k]) return false;
  }
  return true;
}
