/**
 * Just enough ASN.1 DER encoding to write X.509 certificates and wrap EC
 * keys, plus PEM armour. Pure functions over bytes; no parsing beyond PEM.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";

/** DER bytes of one value. */
export type Der = Uint8Array<ArrayBuffer>;

/** Tag-length-value with a definite, minimal length. */
export function tlv(tag: number, content: Uint8Array): Der {
  const length = content.byteLength;
  let header: number[];
  if (length < 0x80) {
    header = [tag, length];
  } else {
    const lengthBytes: number[] = [];
    for (let n = length; n > 0; n = Math.floor(n / 256)) lengthBytes.unshift(n & 0xff);
    header = [tag, 0x80 | lengthBytes.length, ...lengthBytes];
  }
  const out = new Uint8Array(header.length + length);
  out.set(header);
  out.set(content, header.length);
  return out;
}

/** Concatenated byte arrays. */
export const concat = (parts: readonly Uint8Array[]): Der => concatBytes(parts);

export const sequence = (...items: Uint8Array[]): Der => tlv(0x30, concat(items));
export const set = (...items: Uint8Array[]): Der => tlv(0x31, concat(items));
export const octetString = (bytes: Uint8Array): Der => tlv(0x04, bytes);
export const utf8String = (text: string): Der => tlv(0x0c, new TextEncoder().encode(text));
export const boolean = (value: boolean): Der => tlv(0x01, Uint8Array.of(value ? 0xff : 0));
/** `[n] EXPLICIT`: a constructed context-specific wrapper. */
export const explicit = (n: number, inner: Uint8Array): Der => tlv(0xa0 | n, inner);
/** `[n] IMPLICIT` of a primitive value: the bytes under a context-specific tag. */
export const implicit = (n: number, bytes: Uint8Array): Der => tlv(0x80 | n, bytes);

/** A non-negative INTEGER from its big-endian magnitude. */
export function unsignedInteger(magnitude: Uint8Array): Der {
  let start = 0;
  while (start < magnitude.byteLength - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  // A set high bit would read as negative: DER puts a zero byte in front.
  return tlv(0x02, (trimmed[0]! & 0x80) !== 0 ? concat([Uint8Array.of(0), trimmed]) : trimmed);
}

/** A small non-negative INTEGER. */
export function smallInteger(value: number): Der {
  const bytes: number[] = [];
  for (let n = value; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return unsignedInteger(Uint8Array.from(bytes.length === 0 ? [0] : bytes));
}

/** A BIT STRING of whole bytes, or with `unusedBits` trailing bits unused. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Der {
  return tlv(0x03, concat([Uint8Array.of(unusedBits), bytes]));
}

/** An OBJECT IDENTIFIER from its dotted form, such as "2.5.4.3". */
export function oid(dotted: string): Der {
  const arcs = dotted.split(".").map(Number);
  const [first = 0, second = 0, ...rest] = arcs;
  const bytes: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const groups = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) {
      groups.unshift((n & 0x7f) | 0x80);
    }
    bytes.push(...groups);
  }
  return tlv(0x06, Uint8Array.from(bytes));
}

/** An X.509 Time: UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
export function time(date: Date): Der {
  const iso = date.toISOString(); // 2026-11-28T19:01:37.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, "") + "Z"; // 20261128190137Z
  return date.getUTCFullYear() < 2050
    ? tlv(0x17, new TextEncoder().encode(digits.slice(2)))
    : tlv(0x18, new TextEncoder().encode(digits));
}

/** PEM armour of DER bytes under `label` ("CERTIFICATE", "PRIVATE KEY", ...). */
export function toPem(label: string, der: Uint8Array): string {
  let binary = "";
  for (const byte of der) binary += String.fromCharCode(byte);
  const base64 = btoa(binary);
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Every PEM block in `text`, in order, with its label and DER bytes. */
export function pemBlocks(text: string): { label: string; der: Der }[] {
  const blocks: { label: string; der: Der }[] = [];
  const pattern = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (const match of text.matchAll(pattern)) {
    const base64 = (match[2] ?? "").replace(/\s+/g, "");
    let binary: string;
    try {
      binary = atob(base64);
    } catch {
      continue;
    }
    blocks.push({ label: match[1] ?? "", der: Uint8Array.from(binary, (c) => c.charCodeAt(0)) });
  }
  return blocks;
}
