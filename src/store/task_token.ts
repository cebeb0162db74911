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
import { createHmac, timingSafeEqual } from "node:crypto";
import { InvalidTaskTokenError } from "./errors.ts";

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
const MAC_BYTES = 32;

/** Signs and verifies task tokens with one secret. */
export class TaskTokenCodec {
  readonly #secret: Uint8Array;

  constructor(secret: Uint8Array) {
    if (secret.byteLength < MIN_SECRET_BYTES) {
      throw new RangeError(
        `task token secret must be at least ${MIN_SECRET_BYTES} bytes, got ${secret.byteLength}`,
      );
    }
    this.#secret = secret.slice();
  }

  /** A codec with a fresh random secret (tokens die with the process). */
  static withRandomSecret(): TaskTokenCodec {
    return new TaskTokenCodec(crypto.getRandomValues(new Uint8Array(MIN_SECRET_BYTES)));
  }

  /** Returns the signed token for `claims`. */
  sign(claims: TaskTokenClaims): string {
    const wire: WireClaims = { j: claims.jobId, q: claims.queue, a: claims.attempt };
    if (claims.handle !== undefined) wire.h = claims.handle;
    const signed = PREFIX + Buffer.from(JSON.stringify(wire)).toString("base64url");
    return `${signed}.${this.#mac(signed).toString("base64url")}`;
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
    const mac = Buffer.from(token.slice(dot + 1), "base64url");
    const expected = this.#mac(signed);
    if (mac.byteLength !== MAC_BYTES || !timingSafeEqual(mac, expected)) {
      throw new InvalidTaskTokenError("signature does not match");
    }
    return parseClaims(Buffer.from(signed.slice(PREFIX.length), "base64url").toString("utf8"));
  }

  #mac(signed: string): Buffer {
    return createHmac("sha256", this.#secret).update(signed).digest();
  }
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
