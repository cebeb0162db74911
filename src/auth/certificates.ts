/**
 * X.509 certificates for `--tls auto`: a private CA and a server
 * certificate it signs, both P-256 / ECDSA-SHA256. The server certificate
 * is a leaf (`CA:FALSE`, serverAuth, SANs), because rustls, which Deno's
 * TLS uses, refuses a self-signed certificate that is its own CA.
 *
 * @module
 */
import {
  bitString,
  boolean,
  concat,
  type Der,
  explicit,
  implicit,
  octetString,
  oid,
  sequence,
  set,
  smallInteger,
  time,
  toPem,
  unsignedInteger,
  utf8String,
} from "./der.ts";
import { generateP256KeyPair, privateKeyToPem } from "./keys.ts";

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

const DAY_MS = 24 * 3600 * 1000;

/** A certificate with its private key. */
export interface IssuedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

/** A CA able to sign: its name and its key pair. */
export interface CertificateAuthority {
  readonly commonName: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

/** Creates a private CA valid for `validDays` from `nowMs` (minus an hour for clock skew). */
export async function createCertificateAuthority(
  commonName: string,
  nowMs: number,
  validDays: number,
): Promise<{ ca: CertificateAuthority } & IssuedCertificate> {
  const keys = await generateP256KeyPair();
  const ca = { commonName, privateKey: keys.privateKey, publicKey: keys.publicKey };
  const ski = await keyIdentifier(keys.publicKey);
  const certPem = await signCertificate(ca, {
    subject: commonName,
    publicKey: keys.publicKey,
    nowMs,
    validDays,
    extensions: [
      extension(OID.basicConstraints, true, sequence(boolean(true), smallInteger(0))),
      // digitalSignature, keyCertSign, cRLSign: 1000 0110, the last bit unused.
      extension(OID.keyUsage, true, bitString(Uint8Array.of(0x86), 1)),
      extension(OID.subjectKeyIdentifier, false, octetString(ski)),
    ],
  });
  return { ca, certPem, keyPem: await privateKeyToPem(keys.privateKey) };
}

/** Issues a server certificate for the given DNS names and IP addresses. */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  names: { dnsNames: readonly string[]; ipAddresses: readonly string[] },
  nowMs: number,
  validDays: number,
): Promise<IssuedCertificate> {
  const keys = await generateP256KeyPair();
  const altNames = [
    ...names.dnsNames.map((name) => implicit(2, new TextEncoder().encode(name))),
    ...names.ipAddresses.map((ip) => implicit(7, ipAddressBytes(ip))),
  ];
  const certPem = await signCertificate(ca, {
    subject: names.dnsNames[0] ?? names.ipAddresses[0] ?? "airunner",
    publicKey: keys.publicKey,
    nowMs,
    validDays,
    extensions: [
      extension(OID.basicConstraints, true, sequence()),
      // digitalSignature only: 1000 0000, seven bits unused.
      extension(OID.keyUsage, true, bitString(Uint8Array.of(0x80), 7)),
      extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
      extension(OID.subjectAltName, false, sequence(...altNames)),
      extension(OID.subjectKeyIdentifier, false, octetString(await keyIdentifier(keys.publicKey))),
      extension(
        OID.authorityKeyIdentifier,
        false,
        sequence(implicit(0, await keyIdentifier(ca.publicKey))),
      ),
    ],
  });
  return { certPem, keyPem: await privateKeyToPem(keys.privateKey) };
}

interface CertificateFields {
  readonly subject: string;
  readonly publicKey: CryptoKey;
  readonly nowMs: number;
  readonly validDays: number;
  readonly extensions: readonly Der[];
}

async function signCertificate(ca: CertificateAuthority, fields: CertificateFields) {
  const algorithm = sequence(oid(OID.ecdsaWithSha256));
  const tbs = sequence(
    explicit(0, smallInteger(2)), // v3
    unsignedInteger(randomSerial()),
    algorithm,
    name(ca.commonName),
    sequence(
      time(new Date(fields.nowMs - 3600_000)),
      time(new Date(fields.nowMs + fields.validDays * DAY_MS)),
    ),
    name(fields.subject),
    new Uint8Array(await crypto.subtle.exportKey("spki", fields.publicKey)),
    explicit(3, sequence(...fields.extensions)),
  );
  const p1363 = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, ca.privateKey, tbs),
  );
  // WebCrypto signs as r || s; X.509 wants SEQUENCE { INTEGER r, INTEGER s }.
  const signature = sequence(
    unsignedInteger(p1363.subarray(0, 32)),
    unsignedInteger(p1363.subarray(32)),
  );
  return toPem("CERTIFICATE", sequence(tbs, algorithm, bitString(signature)));
}

function name(commonName: string): Der {
  return sequence(set(sequence(oid(OID.commonName), utf8String(commonName))));
}

function extension(id: string, critical: boolean, value: Der): Der {
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

/** A key identifier: SHA-1 of the public key's bits (RFC 5280 4.2.1.2, method 1). */
async function keyIdentifier(publicKey: CryptoKey): Promise<Uint8Array> {
  const raw = await crypto.subtle.exportKey("raw", publicKey);
  return new Uint8Array(await crypto.subtle.digest("SHA-1", raw));
}

/** 16 random bytes, positive and non-zero, as RFC 5280 asks of serial numbers. */
function randomSerial(): Uint8Array {
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial;
}

/** The 4 or 16 bytes of an IPv4 or IPv6 address. */
export function ipAddressBytes(address: string): Uint8Array {
  if (!address.includes(":")) {
    const parts = address.split(".").map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
      throw new RangeError(`not an IPv4 address: ${address}`);
    }
    return Uint8Array.from(parts);
  }
  const [head = "", tail] = address.split("::");
  const groupsOf = (s: string) => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const front = groupsOf(head);
  const back = tail === undefined ? [] : groupsOf(tail);
  const zeros = 8 - front.length - back.length;
  const groups = [...front, ...Array(tail === undefined ? 0 : zeros).fill(0), ...back];
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) {
    throw new RangeError(`not an IPv6 address: ${address}`);
  }
  return concat(groups.map((g) => Uint8Array.of(g >> 8, g & 0xff)));
}
