/**
 * HMAC-SHA256 (RFC 2104, FIPS 180-4) for one fixed key, in plain
 * JavaScript.
 *
 * Task tokens are signed once per leased job and checked once per
 * completion, so their MAC sits on the hot path of every job. Through
 * `node:crypto` each MAC cost about 10 µs in Deno 2.9 (a keyed object made,
 * a call into Rust, a Buffer back), and the whole sign-and-verify round about
 * 45 µs of a job's ~230 µs of server CPU. The key never changes, so its two
 * padded blocks are hashed once here; a MAC of a token (under 120 bytes)
 * is then three compressions of 64 rounds each, about 1-2 µs.
 *
 * @module
 */

/** SHA-256 round constants: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

/** SHA-256 initial hash value. */
const IV = new Int32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

const BLOCK_BYTES = 64;
/** Length of a SHA-256 digest, and so of a MAC. */
export const HMAC_SHA256_BYTES = 32;

/** HMAC-SHA256 under one key; not safe to share across concurrent callers (it reuses scratch space), which JavaScript's one thread makes moot. */
export class HmacSha256 {
  /** Hash state after the key's inner (0x36) and outer (0x5c) padded blocks. */
  readonly #innerState: Int32Array;
  readonly #outerState: Int32Array;
  readonly #schedule = new Int32Array(64);
  readonly #tail = new Uint8Array(2 * BLOCK_BYTES);
  readonly #innerDigest = new Uint8Array(HMAC_SHA256_BYTES);

  constructor(key: Uint8Array) {
    const block = new Uint8Array(BLOCK_BYTES);
    block.set(key.byteLength > BLOCK_BYTES ? sha256(key) : key);
    const pad = new Uint8Array(BLOCK_BYTES);
    this.#innerState = IV.slice();
    for (let i = 0; i < BLOCK_BYTES; i++) pad[i] = block[i]! ^ 0x36;
    compress(this.#innerState, pad, 0, this.#schedule);
    this.#outerState = IV.slice();
    for (let i = 0; i < BLOCK_BYTES; i++) pad[i] = block[i]! ^ 0x5c;
    compress(this.#outerState, pad, 0, this.#schedule);
  }

  /** The 32-byte MAC of `message`. */
  mac(message: Uint8Array): Uint8Array {
    const out = new Uint8Array(HMAC_SHA256_BYTES);
    this.#finish(this.#innerState, message, this.#innerDigest);
    this.#finish(this.#outerState, this.#innerDigest, out);
    return out;
  }

  /** Hashes `message` on from `start` (the state after one 64-byte block) into `out`. */
  #finish(start: Int32Array, message: Uint8Array, out: Uint8Array): void {
    const state = start.slice();
    finishHash(state, BLOCK_BYTES, message, this.#tail, this.#schedule);
    writeState(state, out);
  }
}

/** SHA-256 of `data` (used for keys longer than a block, and by tests). */
export function sha256(data: Uint8Array): Uint8Array {
  const state = IV.slice();
  finishHash(state, 0, data, new Uint8Array(2 * BLOCK_BYTES), new Int32Array(64));
  const out = new Uint8Array(HMAC_SHA256_BYTES);
  writeState(state, out);
  return out;
}

/**
 * Hashes `data` into `state`, which has already taken `prefixBytes` bytes
 * (a multiple of 64), and pads: 0x80, zeros, then the total length in bits
 * as a 64-bit big-endian number.
 */
function finishHash(
  state: Int32Array,
  prefixBytes: number,
  data: Uint8Array,
  tail: Uint8Array,
  schedule: Int32Array,
): void {
  const whole = data.byteLength - (data.byteLength % BLOCK_BYTES);
  for (let offset = 0; offset < whole; offset += BLOCK_BYTES) {
    compress(state, data, offset, schedule);
  }
  const rest = data.byteLength - whole;
  const tailBytes = rest + 9 > BLOCK_BYTES ? 2 * BLOCK_BYTES : BLOCK_BYTES;
  tail.fill(0, 0, tailBytes);
  tail.set(data.subarray(whole), 0);
  tail[rest] = 0x80;
  const bits = (prefixBytes + data.byteLength) * 8;
  const view = new DataView(tail.buffer, tail.byteOffset, tailBytes);
  view.setUint32(tailBytes - 8, Math.floor(bits / 2 ** 32));
  view.setUint32(tailBytes - 4, bits >>> 0);
  for (let offset = 0; offset < tailBytes; offset += BLOCK_BYTES) {
    compress(state, tail, offset, schedule);
  }
}

function writeState(state: Int32Array, out: Uint8Array): void {
  for (let i = 0; i < 8; i++) {
    const word = state[i]!;
    out[i * 4] = word >>> 24;
    out[i * 4 + 1] = word >>> 16;
    out[i * 4 + 2] = word >>> 8;
    out[i * 4 + 3] = word;
  }
}

/** One SHA-256 compression of the 64-byte block at `data[offset]` into `state`. */
function compress(state: Int32Array, data: Uint8Array, offset: number, w: Int32Array): void {
  for (let i = 0; i < 16; i++) {
    const j = offset + i * 4;
    w[i] = (data[j]! << 24) | (data[j + 1]! << 16) | (data[j + 2]! << 8) | data[j + 3]!;
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15]!;
    const y = w[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
  }
  let a = state[0]!;
  let b = state[1]!;
  let c = state[2]!;
  let d = state[3]!;
  let e = state[4]!;
  let f = state[5]!;
  let g = state[6]!;
  let h = state[7]!;
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + s1 + ch + K[i]! + w[i]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (s0 + maj) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0]! + a) | 0;
  state[1] = (state[1]! + b) | 0;
  state[2] = (state[2]! + c) | 0;
  state[3] = (state[3]! + d) | 0;
  state[4] = (state[4]! + e) | 0;
  state[5] = (state[5]! + f) | 0;
  state[6] = (state[6]! + g) | 0;
  state[7] = (state[7]! + h) | 0;
}
