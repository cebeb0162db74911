/**
 * UUIDv7 job ids (RFC 9562). Ids from one generator sort in creation order,
 * even within one millisecond, because the 12-bit `rand_a` field carries a
 * counter (RFC 9562 §6.2, method 1) that is reseeded every new millisecond.
 *
 * @module
 */

/** Makes monotonic UUIDv7 strings from the times it is given. */
export class UuidV7Generator {
  #lastMs = -1;
  #counter = 0;

  /** Returns a new UUIDv7 for Unix time `nowMs`, greater than every earlier one. */
  next(nowMs: number): string {
    let ms = Math.max(Math.floor(nowMs), this.#lastMs);
    if (ms === this.#lastMs) {
      this.#counter++;
      if (this.#counter > 0xfff) {
        // Counter exhausted: borrow the next millisecond rather than repeat.
        ms++;
        this.#counter = randomCounterSeed();
      }
    } else {
      this.#counter = randomCounterSeed();
    }
    this.#lastMs = ms;

    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[0] = Math.floor(ms / 2 ** 40) & 0xff;
    bytes[1] = Math.floor(ms / 2 ** 32) & 0xff;
    bytes[2] = (ms >>> 24) & 0xff;
    bytes[3] = (ms >>> 16) & 0xff;
    bytes[4] = (ms >>> 8) & 0xff;
    bytes[5] = ms & 0xff;
    bytes[6] = 0x70 | (this.#counter >>> 8);
    bytes[7] = this.#counter & 0xff;
    bytes[8] = 0x80 | (bytes[8]! & 0x3f);
    return formatUuid(bytes);
  }
}

// Seeding below 0x800 leaves room for at least 2048 ids in one millisecond.
function randomCounterSeed(): number {
  return crypto.getRandomValues(new Uint16Array(1))[0]! & 0x7ff;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function formatUuid(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
    s += HEX[b[i]!];
  }
  return s;
}
