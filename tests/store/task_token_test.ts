import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { InvalidTaskTokenError } from "../../src/store/errors.ts";
import { MAX_TASK_TOKEN_LENGTH, TaskTokenCodec } from "../../src/store/task_token.ts";

const secret = new TextEncoder().encode("0123456789abcdef0123456789abcdef");
const codec = new TaskTokenCodec(secret);
const claims = { jobId: "01890a5d-ac96-774b-bcce-b302099a8057", queue: "default", attempt: 2 };

Deno.test("a signed token verifies to its claims", () => {
  assert.deepEqual(codec.verify(codec.sign(claims)), claims);
  const withHandle = { ...claims, handle: "receipt-123" };
  assert.deepEqual(codec.verify(codec.sign(withHandle)), withHandle);
});

Deno.test("tampered, truncated, foreign and malformed tokens are refused", () => {
  const token = codec.sign(claims);
  const [prefix, body, mac] = token.split(".") as [string, string, string];
  const otherBody = Buffer.from(JSON.stringify({ j: claims.jobId, q: "default", a: 3 })).toString(
    "base64url",
  );
  const foreign = new TaskTokenCodec(new TextEncoder().encode("another secret of 32 bytes......"));
  const bad = [
    "",
    "v1",
    "v1..",
    `${prefix}.${otherBody}.${mac}`, // claims changed, signature kept
    `${prefix}.${body}.${mac.slice(0, -4)}`, // truncated signature
    token.slice(0, 20),
    `v2.${body}.${mac}`,
    foreign.sign(claims),
    "v1." + "A".repeat(MAX_TASK_TOKEN_LENGTH),
  ];
  for (const t of bad) assert.throws(() => codec.verify(t), InvalidTaskTokenError, t.slice(0, 40));
});

Deno.test("a secret shorter than 32 bytes is refused", () => {
  assert.throws(() => new TaskTokenCodec(new Uint8Array(31)), RangeError);
});

Deno.test("tokens are byte for byte those of the node:crypto signer, so tokens in flight survive an upgrade", () => {
  for (const c of [claims, { ...claims, handle: "receipt+/=ü" }]) {
    const wire = {
      j: c.jobId,
      q: c.queue,
      a: c.attempt,
      ...("handle" in c ? { h: c.handle } : {}),
    };
    const signed = "v1." + Buffer.from(JSON.stringify(wire)).toString("base64url");
    const mac = createHmac("sha256", secret).update(signed).digest("base64url");
    assert.equal(codec.sign(c), `${signed}.${mac}`);
    assert.deepEqual(codec.verify(`${signed}.${mac}`), c);
  }
});

Deno.test("a MAC in any form but the canonical base64url one is refused", () => {
  const token = codec.sign(claims);
  const dot = token.lastIndexOf(".");
  const mac = token.slice(dot + 1);
  const variants = [
    `${mac}=`, // padded
    mac.replaceAll("-", "+").replaceAll("_", "/"), // base64, not base64url
    mac.slice(0, -1) + String.fromCharCode(mac.charCodeAt(mac.length - 1) ^ 1), // other trailing bits
  ].filter((v) => v !== mac);
  assert.ok(variants.length >= 2);
  for (const v of variants) {
    assert.throws(() => codec.verify(`${token.slice(0, dot)}.${v}`), InvalidTaskTokenError, v);
  }
});
