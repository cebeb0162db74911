/**
 * API tokens: ES256 JWTs with iss "airunner", a subject, an expiry and a
 * scope. {@link mintApiToken} signs them (for `airunner token`);
 * {@link ApiTokenVerifier} checks them on every call, with the algorithm
 * pinned to ES256 so that "none", HS256-with-the-public-key and RS256 tokens
 * are refused whatever their header says.
 *
 * @module
 */
import { jwtVerify, SignJWT } from "jose";
import { errors as joseErrors } from "jose";
import { type Clock, systemClock } from "../clock.ts";
import { UnauthenticatedError } from "./errors.ts";
import { isScope, type Scope, SCOPES } from "./scopes.ts";

/** The `iss` every airunner token carries and every server demands. */
export const TOKEN_ISSUER = "airunner";
/** Clock difference between the minting host and the server that is forgiven. */
export const CLOCK_SKEW_SECONDS = 30;
/** Longest accepted token; longer ones are refused before any parsing. */
export const MAX_TOKEN_LENGTH = 8192;
/** Verified tokens remembered so a busy worker's token is checked once, not per call. */
const CACHE_ENTRIES = 1024;

/** Who is calling, as its token says. */
export interface Caller {
  readonly subject: string;
  readonly scopes: readonly Scope[];
}

/** What {@link mintApiToken} puts in a token. */
export interface TokenRequest {
  readonly subject: string;
  readonly scopes: readonly Scope[];
  readonly ttlSeconds: number;
  /** Issue time, in milliseconds since the epoch (default: now). */
  readonly nowMs?: number;
}

/** Signs an API token with a P-256 private key. */
export async function mintApiToken(privateKey: CryptoKey, request: TokenRequest): Promise<string> {
  const iat = Math.floor((request.nowMs ?? Date.now()) / 1000);
  return await new SignJWT({ scope: request.scopes.join(" ") })
    .setProtectedHeader({ alg: "ES256", typ: "JWT" })
    .setIssuer(TOKEN_ISSUER)
    .setSubject(request.subject)
    .setIssuedAt(iat)
    .setExpirationTime(iat + request.ttlSeconds)
    .sign(privateKey);
}

/** Checks `Authorization: Bearer` headers against one or more P-256 public keys. */
export class ApiTokenVerifier {
  readonly #keys: readonly CryptoKey[];
  readonly #clock: Clock;
  readonly #verified = new Map<string, { caller: Caller; expiresAtMs: number }>();

  constructor(publicKeys: readonly CryptoKey[], clock: Clock = systemClock) {
    if (publicKeys.length === 0) throw new RangeError("at least one public key is needed");
    this.#keys = publicKeys;
    this.#clock = clock;
  }

  /**
   * Returns the caller an Authorization header proves.
   * @throws {UnauthenticatedError} saying what was wrong with it.
   */
  async authenticate(authorization: string | null): Promise<Caller> {
    const token = bearerToken(authorization);
    const now = this.#clock.now();
    const cached = this.#verified.get(token);
    if (cached !== undefined) {
      if (now < cached.expiresAtMs + CLOCK_SKEW_SECONDS * 1000) return cached.caller;
      this.#verified.delete(token);
    }
    const { caller, expiresAtMs } = await this.#verify(token, now);
    if (this.#verified.size >= CACHE_ENTRIES) {
      this.#verified.delete(this.#verified.keys().next().value!);
    }
    this.#verified.set(token, { caller, expiresAtMs });
    return caller;
  }

  async #verify(token: string, now: number): Promise<{ caller: Caller; expiresAtMs: number }> {
    for (const key of this.#keys) {
      try {
        const { payload } = await jwtVerify(token, key, {
          algorithms: ["ES256"],
          issuer: TOKEN_ISSUER,
          requiredClaims: ["exp", "sub"],
          clockTolerance: CLOCK_SKEW_SECONDS,
          currentDate: new Date(now),
        });
        return {
          caller: { subject: payload.sub!, scopes: scopesOf(payload.scope) },
          expiresAtMs: payload.exp! * 1000,
        };
      } catch (error) {
        // Another key may have signed it; any other failure is final.
        if (error instanceof joseErrors.JWSSignatureVerificationFailed) continue;
        throw explain(error, token);
      }
    }
    throw new UnauthenticatedError("token signature does not verify with the server's public key");
  }
}

function bearerToken(authorization: string | null): string {
  if (authorization === null || authorization.trim() === "") {
    throw new UnauthenticatedError(
      "missing bearer token (send one with --token or AIRUNNER_TOKEN; mint one with: airunner token)",
    );
  }
  const match = /^Bearer +(\S+)\s*$/i.exec(authorization);
  if (match === null) {
    throw new UnauthenticatedError('the Authorization header must be "Bearer <token>"');
  }
  const token = match[1]!;
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new UnauthenticatedError(`token is longer than ${MAX_TOKEN_LENGTH} characters`);
  }
  return token;
}

/**
 * The scopes a verified `scope` claim grants: space-separated names; a
 * token without the claim is admin (tokens minted before scopes existed).
 */
function scopesOf(claim: unknown): Scope[] {
  if (claim === undefined) return ["admin"];
  if (typeof claim !== "string") {
    throw new UnauthenticatedError("token scope claim is not a string");
  }
  const names = claim.split(" ").filter((s) => s !== "");
  const unknown = names.filter((s) => !isScope(s));
  if (names.length === 0 || unknown.length > 0) {
    throw new UnauthenticatedError(`token scope must be one or more of ${SCOPES.join(", ")}`);
  }
  return names as Scope[];
}

/** jose's error as a message that says what was wrong, without the token. */
function explain(error: unknown, token: string): UnauthenticatedError {
  if (error instanceof UnauthenticatedError) return error;
  if (error instanceof joseErrors.JOSEAlgNotAllowed) {
    return new UnauthenticatedError(
      `token algorithm ${headerAlgorithm(token)} is not allowed; only ES256 is accepted`,
    );
  }
  if (error instanceof joseErrors.JWTExpired) {
    const exp = Number(error.payload.exp);
    return new UnauthenticatedError(
      `token expired at ${
        new Date(exp * 1000).toISOString()
      } (mint a new one with: airunner token)`,
    );
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.reason === "missing") {
      return new UnauthenticatedError(`token has no "${error.claim}" claim, which is required`);
    }
    if (error.claim === "iss") {
      return new UnauthenticatedError(`token issuer must be "${TOKEN_ISSUER}"`);
    }
    if (error.claim === "nbf") return new UnauthenticatedError("token is not valid yet (nbf)");
    return new UnauthenticatedError(`token claim "${error.claim}" is invalid`);
  }
  if (error instanceof joseErrors.JOSEError) {
    return new UnauthenticatedError(
      "malformed token (expected a compact JWS: header.payload.signature)",
    );
  }
  return new UnauthenticatedError("malformed token");
}

/** The `alg` a token's header names, shown only if it is a short plain word. */
function headerAlgorithm(token: string): string {
  try {
    const base64 = token.split(".")[0]!.replace(/-/g, "+").replace(/_/g, "/");
    const header = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")));
    const alg = String(header.alg);
    return /^[A-Za-z0-9]{1,16}$/.test(alg) ? alg : "(unreadable)";
  } catch {
    return "(unreadable)";
  }
}
