import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { SignJWT } from "jose";
import { UnauthenticatedError } from "../../src/auth/errors.ts";
import {
  ApiTokenVerifier,
  CLOCK_SKEW_SECONDS,
  MAX_TOKEN_LENGTH,
  mintApiToken,
} from "../../src/auth/jwt.ts";
import { generateP256KeyPair, publicKeyToPem } from "../../src/auth/keys.ts";
import { FakeClock } from "../support/fake_clock.ts";

const signer = await generateP256KeyPair();
const stranger = await generateP256KeyPair();
const clock = new FakeClock();
const verifier = new ApiTokenVerifier([signer.publicKey], clock);
const nowSeconds = () => Math.floor(clock.now() / 1000);

function bearer(token: string): string {
  return `Bearer ${token}`;
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** Asserts the header is refused with a message matching `reason` that does not contain the token. */
async function assertRefused(
  authorization: string | null,
  reason: RegExp,
  by: ApiTokenVerifier = verifier,
) {
  const error = await by.authenticate(authorization).then(
    () => assert.fail(`accepted: ${reason}`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof UnauthenticatedError, String(error));
  assert.match(error.message, reason);
  const token = authorization?.replace(/^Bearer /, "") ?? "";
  if (token.length > 8) assert.ok(!error.message.includes(token), "the message echoes the token");
}

/** Standard API token claims, valid for ten minutes, with `overrides` applied. */
function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: "airunner", sub: "ci", iat: nowSeconds(), exp: nowSeconds() + 600, ...overrides };
}

async function es256(payload: Record<string, unknown>, key: CryptoKey = signer.privateKey) {
  return await new SignJWT(payload).setProtectedHeader({ alg: "ES256" }).sign(key);
}

Deno.test("a minted token verifies to its subject and scopes", async () => {
  const token = await mintApiToken(signer.privateKey, {
    subject: "worker-1",
    scopes: ["worker", "submit"],
    ttlSeconds: 3600,
    nowMs: clock.now(),
  });
  assert.deepEqual(await verifier.authenticate(bearer(token)), {
    subject: "worker-1",
    scopes: ["worker", "submit"],
  });
  const [, payload] = token.split(".");
  const decoded = JSON.parse(Buffer.from(payload!, "base64url").toString());
  assert.deepEqual(Object.keys(decoded).sort(), ["exp", "iat", "iss", "scope", "sub"]);
  assert.equal(decoded.exp - decoded.iat, 3600);
});

Deno.test("a missing or non-bearer Authorization header is refused", async () => {
  await assertRefused(null, /missing bearer token/);
  await assertRefused("", /missing bearer token/);
  await assertRefused("Basic dXNlcjpwYXNz", /must be "Bearer <token>"/);
  await assertRefused("Bearer", /must be "Bearer <token>"/);
});

Deno.test("an alg none token is refused as a wrong algorithm", async () => {
  const token = `${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims())}.`;
  await assertRefused(bearer(token), /algorithm none is not allowed; only ES256/);
});

Deno.test("an HS256 token keyed with the server's public key is refused (key confusion)", async () => {
  const secret = new TextEncoder().encode(await publicKeyToPem(signer.publicKey));
  const token = await new SignJWT(claims()).setProtectedHeader({ alg: "HS256" }).sign(secret);
  await assertRefused(bearer(token), /algorithm HS256 is not allowed/);
});

Deno.test("an RS256 token is refused", async () => {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const token = await new SignJWT(claims()).setProtectedHeader({ alg: "RS256" }).sign(privateKey);
  await assertRefused(bearer(token), /algorithm RS256 is not allowed/);
});

Deno.test("an ES256 token signed by another key is refused as a bad signature", async () => {
  await assertRefused(
    bearer(await es256(claims(), stranger.privateKey)),
    /signature does not verify/,
  );
});

Deno.test("a tampered payload is refused as a bad signature", async () => {
  const [header, , signature] = (await es256(claims())).split(".");
  const forged = `${header}.${base64url(claims({ sub: "root", scope: "admin" }))}.${signature}`;
  await assertRefused(bearer(forged), /signature does not verify/);
});

Deno.test("expiry is required and enforced with the clock-skew leeway", async () => {
  const { exp: _exp, ...withoutExp } = claims();
  await assertRefused(bearer(await es256(withoutExp)), /no "exp" claim/);
  const expired = await es256(claims({ exp: nowSeconds() - CLOCK_SKEW_SECONDS - 1 }));
  await assertRefused(bearer(expired), /token expired at \d{4}-\d\d-\d\dT/);
  const withinSkew = await es256(claims({ exp: nowSeconds() - CLOCK_SKEW_SECONDS + 5 }));
  assert.equal((await verifier.authenticate(bearer(withinSkew))).subject, "ci");
});

Deno.test("nbf in the future is refused; within the leeway it is accepted", async () => {
  await assertRefused(bearer(await es256(claims({ nbf: nowSeconds() + 300 }))), /not valid yet/);
  const soon = await es256(claims({ nbf: nowSeconds() + CLOCK_SKEW_SECONDS - 5 }));
  assert.equal((await verifier.authenticate(bearer(soon))).subject, "ci");
});

Deno.test("the issuer must be airunner and the subject present", async () => {
  await assertRefused(bearer(await es256(claims({ iss: "someone-else" }))), /issuer must be/);
  const { iss: _iss, ...withoutIss } = claims();
  await assertRefused(bearer(await es256(withoutIss)), /"iss" claim|issuer/);
  const { sub: _sub, ...withoutSub } = claims();
  await assertRefused(bearer(await es256(withoutSub)), /no "sub" claim/);
});

Deno.test("scope: absent means admin; unknown or empty scopes are refused", async () => {
  assert.deepEqual((await verifier.authenticate(bearer(await es256(claims())))).scopes, ["admin"]);
  for (const scope of ["root", "", "submit root", 7]) {
    await assertRefused(bearer(await es256(claims({ scope }))), /scope/);
  }
});

Deno.test("malformed and oversized tokens are refused without parsing", async () => {
  await assertRefused(bearer("not-a-jwt"), /malformed token/);
  await assertRefused(bearer("a.b.c"), /malformed token/);
  await assertRefused(bearer("x".repeat(MAX_TOKEN_LENGTH + 1)), /longer than 8192/);
});

Deno.test("a cached token is still refused once it expires", async () => {
  const local = new FakeClock();
  const localVerifier = new ApiTokenVerifier([signer.publicKey], local);
  const token = await mintApiToken(signer.privateKey, {
    subject: "short",
    scopes: ["submit"],
    ttlSeconds: 60,
    nowMs: local.now(),
  });
  assert.equal((await localVerifier.authenticate(bearer(token))).subject, "short");
  await local.advance((60 + CLOCK_SKEW_SECONDS + 1) * 1000);
  await assertRefused(bearer(token), /expired/, localVerifier);
});

Deno.test("several public keys: tokens of each verify (key rotation)", async () => {
  const rotating = new ApiTokenVerifier([stranger.publicKey, signer.publicKey], clock);
  for (const key of [signer.privateKey, stranger.privateKey]) {
    assert.equal((await rotating.authenticate(bearer(await es256(claims(), key)))).subject, "ci");
  }
  const third = await generateP256KeyPair();
  await assertRefused(
    bearer(await es256(claims(), third.privateKey)),
    /signature does not verify/,
    rotating,
  );
});
