/**
 * How deeply a JSON text nests objects and arrays, found by one pass over
 * its bytes without parsing it: the check that keeps `JSON.parse` (and the
 * protobuf JSON reader after it) from ever seeing a body of a few MB of
 * brackets.
 *
 * @module
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Whether `json` (UTF-8) opens more than `maxDepth` objects and arrays
 * inside one another; the top-level value counts as depth 1. Brackets in
 * strings do not count. Text that is not JSON at all is not judged here
 * (the parser refuses it): the scan only bounds the work the parser does.
 *
 * @example
 * ```ts
 * nestsDeeperThan(new TextEncoder().encode('{"a":[[1]]}'), 2); // true: depth 3
 * ```
 */
export function nestsDeeperThan(json: Uint8Array, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const byte = json[i]!;
    if (inString) {
      // UTF-8 continuation bytes are >= 0x80, so they never look like these.
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}
