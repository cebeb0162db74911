import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import { join } from "node:path";
import { ensureAutoTls } from "../../src/auth/auto_tls.ts";
import { createCertificateAuthority, issueServerCertificate } from "../../src/auth/certificates.ts";
import {
  generateP256KeyPair,
  importP256PrivateKey,
  importP256PublicKeys,
  InvalidKeyError,
  privateKeyToPem,
  publicKeyToPem,
} from "../../src/auth/keys.ts";
import { freePort } from "../support/airunner_process.ts";

const ECDSA = { name: "ECDSA", hash: "SHA-256" };
const message = new TextEncoder().encode("job.v1");

function ecKeyPairPem(namedCurve: string, privateType: "sec1" | "pkcs8") {
  return generateKeyPairSync("ec", {
    namedCurve,
    privateKeyEncoding: { type: privateType, format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
}

async function assertSignsForPublicKey(privatePem: string, publicPem: string) {
  const privateKey = await importP256PrivateKey(privatePem, "test key");
  const [publicKey] = await importP256PublicKeys(publicPem, "test public key");
  const signature = await crypto.subtle.sign(ECDSA, privateKey, message);
  assert.ok(await crypto.subtle.verify(ECDSA, publicKey!, signature, message));
}

Deno.test("P-256 private keys load from PKCS#8 and SEC1 PEM", async () => {
  for (const type of ["pkcs8", "sec1"] as const) {
    const pair = ecKeyPairPem("prime256v1", type);
    assert.match(pair.privateKey, type === "sec1" ? /EC PRIVATE KEY/ : /BEGIN PRIVATE KEY/);
    await assertSignsForPublicKey(pair.privateKey, pair.publicKey);
  }
});

Deno.test("keys airunner writes load back and match each other", async () => {
  const pair = await generateP256KeyPair();
  await assertSignsForPublicKey(
    await privateKeyToPem(pair.privateKey),
    await publicKeyToPem(pair.publicKey),
  );
});

Deno.test("keys of other curves or kinds are refused with the reason and the source", async () => {
  const p384 = ecKeyPairPem("secp384r1", "pkcs8");
  await assert.rejects(
    importP256PrivateKey(p384.privateKey, "--signing-key k.pem"),
    (e: unknown) =>
      e instanceof InvalidKeyError && /--signing-key k\.pem/.test(e.message) &&
      /not a P-256/.test(e.message),
  );
  await assert.rejects(importP256PublicKeys(p384.publicKey, "pub"), /not a P-256/);
  const rsa = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  await assert.rejects(importP256PrivateKey(rsa.privateKey, "rsa"), /not a P-256/);
  await assert.rejects(importP256PrivateKey("hello", "junk"), /no "PRIVATE KEY"/);
  const p256 = ecKeyPairPem("prime256v1", "pkcs8");
  await assert.rejects(
    importP256PublicKeys(p256.privateKey, "--jwt-public-key"),
    /this is a private key; give the server the public one/,
  );
});

Deno.test("a PEM file with several public keys yields each (rotation)", async () => {
  const a = ecKeyPairPem("prime256v1", "pkcs8");
  const b = ecKeyPairPem("prime256v1", "pkcs8");
  const keys = await importP256PublicKeys(`${a.publicKey}\n${b.publicKey}`, "both");
  assert.equal(keys.length, 2);
});

Deno.test("the private CA and its leaf are valid X.509 for localhost, 127.0.0.1 and ::1", async () => {
  const now = Date.now();
  const { ca, certPem: caPem } = await createCertificateAuthority("test CA", now, 10);
  const leaf = await issueServerCertificate(
    ca,
    { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"] },
    now,
    5,
  );
  const caCert = new X509Certificate(caPem);
  const leafCert = new X509Certificate(leaf.certPem);
  assert.equal(caCert.ca, true);
  assert.equal(leafCert.ca, false, "the leaf must say CA:FALSE");
  assert.ok(caCert.verify(caCert.publicKey), "the CA is self-signed");
  assert.ok(leafCert.verify(caCert.publicKey), "the CA signed the leaf");
  assert.ok(leafCert.checkIssued(caCert));
  assert.equal(leafCert.checkHost("localhost"), "localhost");
  assert.equal(leafCert.checkIP("127.0.0.1"), "127.0.0.1");
  assert.ok(leafCert.checkIP("::1"));
  assert.equal(leafCert.checkHost("example.com"), undefined);
  const days = (Date.parse(leafCert.validTo) - now) / 86_400_000;
  assert.ok(days > 4.9 && days < 5.1, `leaf valid for ${days} days`);
  // The key file belongs to the certificate.
  assert.equal(
    createPublicKey(leaf.keyPem).export({ format: "pem", type: "spki" }),
    leafCert.publicKey.export({ format: "pem", type: "spki" }),
  );
});

Deno.test("a TLS server with an auto certificate is trusted through its CA only", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "airunner-tls-" });
  const tls = await ensureAutoTls(dataDir);
  const port = freePort();
  await using server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    cert: tls.certPem,
    key: tls.keyPem,
    onListen() {},
  }, () => new Response("ok"));
  const trusting = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(tls.caPath)] });
  try {
    for (const host of ["127.0.0.1", "localhost"]) {
      const response = await fetch(`https://${host}:${port}/`, { client: trusting });
      assert.equal(await response.text(), "ok");
    }
    await assert.rejects(fetch(`https://127.0.0.1:${port}/`), /certificate|fetch failed/i);
  } finally {
    trusting.close();
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("auto TLS writes its files once, private keys 0600, and renews only the leaf", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "airunner-tls-" });
  try {
    const now = Date.UTC(2026, 0, 1);
    const first = await ensureAutoTls(dataDir, now);
    assert.equal(first.createdCa, true);
    assert.equal(first.caPath, join(dataDir, "tls", "ca.pem"));
    for (const name of ["ca-key.pem", "server-key.pem"]) {
      assert.equal((await Deno.stat(join(dataDir, "tls", name))).mode! & 0o777, 0o600, name);
    }
    const caPem = await Deno.readTextFile(first.caPath);

    const again = await ensureAutoTls(dataDir, now + 86_400_000);
    assert.equal(again.createdCa, false);
    assert.equal(again.certPem, first.certPem, "a fresh leaf is reused");

    // 380 days later the 397-day leaf has under 30 days left: a new leaf, the same CA.
    const later = now + 380 * 86_400_000;
    const renewed = await ensureAutoTls(dataDir, later);
    assert.equal(renewed.createdCa, false);
    assert.notEqual(renewed.certPem, first.certPem);
    assert.equal(await Deno.readTextFile(first.caPath), caPem);
    const caCert = new X509Certificate(caPem);
    assert.ok(new X509Certificate(renewed.certPem).verify(caCert.publicKey));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
