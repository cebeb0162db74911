/**
 * Task tokens: the proof a worker holds a lease. A token names the job, its
 * queue and the attempt that dequeued it, plus an optional backend handle
 * (for example an SQS receipt handle), and is signed with HMAC-SHA256 so it
 * cannot be forged or altered. Stores verify it in constant time and then
 * check that the attempt is still the job's current one (the fence).
 *
 * Format: `v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "v1." + claims))>`.
 *
 * @module
 */
import { InvalidTaskTokenError } from "./errors.ts";
import { HMAC_SHA256_BYTES, HmacSha256 } from "./hmac_sha256.ts";

/** What a task token asserts. */
export interface TaskTokenClaims {
  readonly jobId: string;
  readonly queue: string;
  /** 1 for the first dequeue of the job, 2 for the second, ... */
  readonly attempt: number;
  /** Backend-specific lease handle, such as an SQS receipt handle. */
  readonly handle?: string;
}

/** Shortest accepted signing secret, in bytes. */
export const MIN_SECRET_BYTES = 32;
/** Longest accepted token, in characters; longer input is rejected before any hashing. */
export const MAX_TASK_TOKEN_LENGTH = 4096;

const PREFIX = "v1.";
/** Length of a MAC in base64url without padding. */
const MAC_CHARS = Math.ceil(HMAC_SHA256_BYTES * 4 / 3);
const BASE64URL = { alphabet: "base64url", omitPadding: true } as const;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Signs and verifies task tokens with one secret. */
export class TaskTokenCodec {
  readonly #hmac: HmacSha256;

  constructor(secret: Uint8Array) {
    if (secret.byteLength < MIN_SECRET_BYTES) {
      throw new RangeError(
        `task token secret must be at least ${MIN_SECRET_BYTES} bytes, got ${secret.byteLength}`,
      );
    }
    this.#hmac = new HmacSha256(secret);
  }

  /** A codec with a fresh random secret (tokens die with the process). */
  static withRandomSecret(): TaskTokenCodec {
    return new TaskTokenCodec(crypto.getRandomValues(new Uint8Array(MIN_SECRET_BYTES)));
  }

  /** Returns the signed token for `claims`. */
  sign(claims: TaskTokenClaims): string {
    const wire: WireClaims = { j: claims.jobId, q: claims.queue, a: claims.attempt };
    if (claims.handle !== undefined) wire.h = claims.handle;
    const signed = PREFIX + utf8.encode(JSON.stringify(wire)).toBase64(BASE64URL);
    return `${signed}.${this.#mac(signed)}`;
  }

  /**
   * Returns the claims of a genuine token.
   * @throws {InvalidTaskTokenError} when the token is malformed or forged.
   */
  verify(token: string): TaskTokenClaims {
    if (token.length === 0) throw new InvalidTaskTokenError("empty");
    if (token.length > MAX_TASK_TOKEN_LENGTH) {
      throw new InvalidTaskTokenError(`longer than ${MAX_TASK_TOKEN_LENGTH} characters`);
    }
    if (!token.startsWith(PREFIX)) throw new InvalidTaskTokenError("unknown format");
    const dot = token.lastIndexOf(".");
    if (dot <= PREFIX.length) throw new InvalidTaskTokenError("malformed");
    const signed = token.slice(0, dot);
    if (!sameInConstantTime(token.slice(dot + 1), this.#mac(signed))) {
      throw new InvalidTaskTokenError("signature does not match");
    }
    let json: string;
    try {
      json = strictUtf8.decode(Uint8Array.fromBase64(signed.slice(PREFIX.length), BASE64URL));
    } catch {
      throw new InvalidTaskTokenError("claims are not base64url UTF-8");
    }
    return parseClaims(json);
  }

  /** The MAC of `signed` in base64url (its canonical form, the only one signed tokens carry). */
  #mac(signed: string): string {
    return this.#hmac.mac(utf8.encode(signed)).toBase64(BASE64URL);
  }
}

/**
 * Compares a MAC given in a token with the expected one in time that depends
 * only on their lengths (a MAC always has {@link MAC_CHARS}), so timing never
 * tells a forger how much of a guess was right.
 */
function sameInConstantTime(given: string, expected: string): boolean {
  if (given.length !== MAC_CHARS || expected.length !== MAC_CHARS) return false;
  let diff = 0;
  for (let i = 0; i < MAC_CHARS; i++) diff |= given.charCodeAt(i) ^ expected.charCodeAt(i);
  return diff === 0;
}

interface WireClaims {
  j: string;
  q: string;
  a: number;
  h?: string;
}

// Only reached for tokens this process (or one sharing its secret) signed, so
// a failure here means a bug or a secret shared with an incompatible writer.
function parseClaims(json: string): TaskTokenClaims {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new InvalidTaskTokenError("claims are not JSON");
  }
  if (typeof value !== "object" || value === null) {
    throw new InvalidTaskTokenError("claims are not an object");
  }
  const { j, q, a, h } = value as Record<string, unknown>;
  if (typeof j !== "string" || typeof q !== "string" || typeof a !== "number") {
    throw new InvalidTaskTokenError("claims lack job, queue or attempt");
  }
  if (!Number.isSafeInteger(a) || a < 1) throw new InvalidTaskTokenError("attempt out of range");
  if (h !== undefined && typeof h !== "string") throw new InvalidTaskTokenError("bad handle");
  return h === undefined ? { jobId: j, queue: q, attempt: a } : {
    jobId: j,
    queue: q,
    attempt: a,
    handle: h,
  };
}
