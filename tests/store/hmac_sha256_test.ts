import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { HmacSha256, sha256 } from "../../src/store/hmac_sha256.ts";

const text = (s: string) => new TextEncoder().encode(s);
const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

Deno.test("SHA-256 matches the FIPS 180-4 examples", () => {
  assert.equal(
    hex(sha256(text(""))),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    hex(sha256(text("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  // 56 bytes: the length no longer fits in the last block, so padding takes a second one.
  assert.equal(
    hex(sha256(text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
});

Deno.test("HMAC-SHA256 matches the RFC 4231 test cases", () => {
  const cases: [Uint8Array, string, string][] = [
    [
      new Uint8Array(20).fill(0x0b),
      "Hi There",
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ],
    [
      text("Jefe"),
      "what do ya want for nothing?",
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ],
    // Keys longer than a block are hashed first.
    [
      new Uint8Array(131).fill(0xaa),
      "Test Using Larger Than Block-Size Key - Hash Key First",
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ],
    [
      new Uint8Array(131).fill(0xaa),
      "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ],
  ];
  for (const [key, data, expected] of cases) {
    assert.equal(hex(new HmacSha256(key).mac(text(data))), expected, data);
  }
});

Deno.test("HMAC-SHA256 agrees with node:crypto at every length around the block boundaries", () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const hmac = new HmacSha256(key);
  for (let length = 0; length <= 200; length++) {
    const message = crypto.getRandomValues(new Uint8Array(length));
    assert.equal(
      hex(hmac.mac(message)),
      createHmac("sha256", key).update(message).digest("hex"),
      `length ${length}`,
    );
    assert.equal(hex(sha256(message)), createHash("sha256").update(message).digest("hex"));
  }
});

Deno.test("one HmacSha256 gives the same MAC every time (no state leaks between calls)", () => {
  const hmac = new HmacSha256(text("a key of at least thirty-two bytes!"));
  const first = hex(hmac.mac(text("first")));
  hmac.mac(new Uint8Array(130).fill(7));
  assert.equal(hex(hmac.mac(text("first"))), first);
});
