/**
 * P-256 keys for ES256 tokens and for the private TLS CA: generating them,
 * writing them as PEM, and reading PEM (PKCS#8 or SEC1 private keys, SPKI
 * public keys) into WebCrypto keys. A key of another type or curve is
 * refused with a message that says so.
 *
 * @module
 */
import { octetString, oid, pemBlocks, sequence, smallInteger, toPem } from "./der.ts";

const EC_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const OID_P256 = "1.2.840.10045.3.1.7";

/** A key file (or PEM text) that cannot be used; the message says which and why. */
export class InvalidKeyError extends Error {
  constructor(source: string, reason: string) {
    super(`${source}: ${reason}`);
    this.name = "InvalidKeyError";
  }
}

/** A new extractable P-256 key pair. */
export async function generateP256KeyPair(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(EC_ALGORITHM, true, ["sign", "verify"]);
}

/** The private key as PKCS#8 PEM ("BEGIN PRIVATE KEY"). */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  return toPem("PRIVATE KEY", new Uint8Array(await crypto.subtle.exportKey("pkcs8", key)));
}

/** The public key as SPKI PEM ("BEGIN PUBLIC KEY"). */
export async function publicKeyToPem(key: CryptoKey): Promise<string> {
  return toPem("PUBLIC KEY", new Uint8Array(await crypto.subtle.exportKey("spki", key)));
}

/**
 * Reads a P-256 private key from PEM text: PKCS#8 ("PRIVATE KEY") or SEC1
 * ("EC PRIVATE KEY", what `openssl ecparam -genkey` writes).
 * @param source names the key in errors, such as "--signing-key key.pem".
 */
export async function importP256PrivateKey(pem: string, source: string): Promise<CryptoKey> {
  const block = pemBlocks(pem).find((b) =>
    b.label === "PRIVATE KEY" || b.label === "EC PRIVATE KEY"
  );
  if (block === undefined) {
    throw new InvalidKeyError(source, 'no "PRIVATE KEY" or "EC PRIVATE KEY" PEM block');
  }
  const pkcs8 = block.label === "EC PRIVATE KEY" ? sec1ToPkcs8(block.der) : block.der;
  try {
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, EC_ALGORITHM, true, ["sign"]);
    // Import is lazy: a key of another curve fails only when first used.
    await crypto.subtle.exportKey("jwk", key);
    return key;
  } catch {
    throw new InvalidKeyError(source, "not a P-256 (prime256v1) EC private key; ES256 needs one");
  }
}

/**
 * Reads every P-256 public key ("PUBLIC KEY" blocks) in PEM text. More than
 * one lets a server accept tokens of an old and a new key while rotating.
 */
export async function importP256PublicKeys(pem: string, source: string): Promise<CryptoKey[]> {
  const blocks = pemBlocks(pem).filter((b) => b.label === "PUBLIC KEY");
  if (blocks.length === 0) {
    const hint = pemBlocks(pem).some((b) => b.label.endsWith("PRIVATE KEY"))
      ? " (this is a private key; give the server the public one)"
      : "";
    throw new InvalidKeyError(source, `no "PUBLIC KEY" PEM block${hint}`);
  }
  return await Promise.all(blocks.map(async (block) => {
    try {
      const key = await crypto.subtle.importKey("spki", block.der, EC_ALGORITHM, true, ["verify"]);
      await crypto.subtle.exportKey("jwk", key);
      return key;
    } catch {
      throw new InvalidKeyError(source, "not a P-256 (prime256v1) EC public key; ES256 needs one");
    }
  }));
}

/** The public half of a P-256 private key. */
export async function publicKeyOf(privateKey: CryptoKey): Promise<CryptoKey> {
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const { d: _d, key_ops: _ops, ...publicJwk } = jwk;
  return await crypto.subtle.importKey("jwk", publicJwk, EC_ALGORITHM, true, ["verify"]);
}

/**
 * Wraps a SEC1 ECPrivateKey in a PKCS#8 PrivateKeyInfo for P-256
 * (RFC 5915 in RFC 5208), which is the form WebCrypto imports.
 */
function sec1ToPkcs8(sec1: Uint8Array): Uint8Array<ArrayBuffer> {
  return sequence(
    smallInteger(0),
    sequence(oid(OID_EC_PUBLIC_KEY), oid(OID_P256)),
    octetString(sec1),
  );
}
