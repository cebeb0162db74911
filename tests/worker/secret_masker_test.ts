import assert from "node:assert/strict";
import { maskSecretsInText, secretPatterns, StreamMasker } from "../../src/worker/secret_masker.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Streams `chunks` through a masker of `secrets` and returns the whole output. */
function streamed(secrets: string[], chunks: Uint8Array[]): string {
  const masker = new StreamMasker(secretPatterns(secrets));
  const out: number[] = [];
  for (const chunk of chunks) out.push(...masker.push(chunk));
  out.push(...masker.flush());
  return decoder.decode(new Uint8Array(out));
}

/**
 * The same masking done the plain way, on the whole output at once: every
 * occurrence of every pattern marks its bytes; each run of marked bytes
 * becomes one "***".
 */
function reference(secrets: string[], text: string): string {
  const data = encoder.encode(text);
  const marked = new Array<boolean>(data.byteLength).fill(false);
  for (const pattern of secretPatterns(secrets)) {
    for (let i = 0; i + pattern.byteLength <= data.byteLength; i++) {
      if (pattern.every((b, k) => data[i + k] === b)) {
        for (let k = 0; k < pattern.byteLength; k++) marked[i + k] = true;
      }
    }
  }
  const out: number[] = [];
  for (let i = 0; i < data.byteLength; i++) {
    if (!marked[i]) out.push(data[i]!);
    else if (i === 0 || !marked[i - 1]) out.push(...encoder.encode("***"));
  }
  return decoder.decode(new Uint8Array(out));
}

/** Checks the output of `text` split in two at every byte position, and in single bytes. */
function assertEverySplit(secrets: string[], text: string, expected: string) {
  assert.equal(reference(secrets, text), expected, "the reference agrees with the expectation");
  const data = encoder.encode(text);
  assert.equal(streamed(secrets, [data]), expected, "one chunk");
  for (let at = 0; at <= data.byteLength; at++) {
    assert.equal(
      streamed(secrets, [data.subarray(0, at), data.subarray(at)]),
      expected,
      `split at byte ${at}`,
    );
  }
  const bytes = [...data].map((b) => new Uint8Array([b]));
  assert.equal(streamed(secrets, bytes), expected, "one byte at a time");
}

Deno.test("a secret is masked wherever its value appears, split across chunks at every position", () => {
  assertEverySplit(["s3cr3t-value"], "token=s3cr3t-value\n", "token=***\n");
  assertEverySplit(["s3cr3t-value"], "s3cr3t-value.s3cr3t-values3cr3t-value", "***.***");
  assertEverySplit(["s3cr3t-value"], "s3cr3t-valu", "s3cr3t-valu");
  assertEverySplit(["abc"], "ababcabcab", "ab***ab");
});

Deno.test("part of a secret is not masked; only whole values are", () => {
  assertEverySplit(["s3cr3t-value"], "s3cr\ns3cr3t\n", "s3cr\ns3cr3t\n");
});

Deno.test("overlapping and adjacent secrets are masked as one, hiding every byte of both", () => {
  assertEverySplit(["abcd", "cdef"], "xabcdefx", "x***x");
  assertEverySplit(["aaa"], "aaaa", "***");
  assertEverySplit(["ab", "cd"], "abcd-ab", "***-***");
});

Deno.test("a value that is a prefix of another: the longer match wins, the shorter still masks alone", () => {
  assertEverySplit(["abc", "abcdef"], "abcdef abcxyz abcde", "*** ***xyz ***de");
  assertEverySplit(["abcdef", "abc"], "abcdef", "***");
});

Deno.test("a multi-line value is masked whole, in its pty form, and line by line", () => {
  const key = "-----BEGIN KEY-----\nMIIabc\n\n-----END KEY-----\n";
  assertEverySplit([key], `before\n${key}after\n`, "before\n***after\n");
  const pty = key.replaceAll("\n", "\r\n");
  assertEverySplit([key], `before\r\n${pty}after\r\n`, "before\r\n***after\r\n");
  // Printed one line at a time (and the blank line is not a secret).
  assertEverySplit([key], "line: MIIabc\r\n\n  \n", "line: ***\r\n\n  \n");
  assertEverySplit([key], "-----END KEY-----", "***");
});

Deno.test("a value with \\r\\n line ends has its lines masked without the \\r", () => {
  assertEverySplit(["one\r\ntwo"], "one\ntwo\n", "***\n***\n");
});

Deno.test("UTF-8 values are matched on bytes, also when a character is split across chunks", () => {
  assertEverySplit(["pässwörd-€"], "[pässwörd-€] pässwörd-", "[***] pässwörd-");
  assertEverySplit(["日本"], "日本語", "***語");
});

Deno.test("held-back bytes never exceed the longest secret minus one byte, and flush releases them", () => {
  const masker = new StreamMasker(secretPatterns(["abcdef"]));
  assert.equal(decoder.decode(masker.push(encoder.encode("xxabcde"))), "xx");
  assert.equal(masker.holding, true);
  assert.equal(decoder.decode(masker.flush()), "abcde");
  assert.equal(masker.holding, false);
  assert.equal(decoder.decode(masker.push(encoder.encode("f"))), "f", "the flush ended the match");
  // Output that cannot start a secret is never held.
  assert.equal(decoder.decode(masker.push(encoder.encode("done\n"))), "done\n");
  assert.equal(masker.holding, false);
});

Deno.test("a mask that spans chunks is written once", () => {
  const masker = new StreamMasker(secretPatterns(["abc", "cdefgh"]));
  assert.equal(decoder.decode(masker.push(encoder.encode("abcde"))), "***");
  assert.equal(decoder.decode(masker.push(encoder.encode("fgh!"))), "!");
  assert.equal(decoder.decode(masker.push(encoder.encode("abc"))), "***");
  assert.equal(decoder.decode(masker.push(encoder.encode("abc"))), "", "adjacent: one mask");
  assert.equal(decoder.decode(masker.push(encoder.encode("."))), ".");
  assert.equal(decoder.decode(masker.flush()), "");
});

Deno.test("without secrets every chunk passes through as it came, not copied", () => {
  const masker = new StreamMasker(secretPatterns([]));
  const chunk = encoder.encode("some output\n");
  assert.equal(masker.push(chunk), chunk);
  assert.equal(masker.flush().byteLength, 0);
  const withSecret = new StreamMasker(secretPatterns(["zzz"]));
  const clean = encoder.encode("nothing secret here\n");
  assert.equal(withSecret.push(clean), clean, "a chunk with no match is not copied either");
});

Deno.test("random output with random splits masks as the whole-output reference does", () => {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const alphabet = ["a", "b", "c", "\n", "\r", "é"];
  const secrets = ["abca", "bcab", "a\nb", "cc", "é\ré"];
  for (let run = 0; run < 300; run++) {
    let text = "";
    const length = Math.floor(random() * 40);
    for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
    const data = encoder.encode(text);
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < data.byteLength;) {
      const size = 1 + Math.floor(random() * 6);
      chunks.push(data.subarray(at, at + size));
      at += size;
    }
    assert.equal(streamed(secrets, chunks), reference(secrets, text), JSON.stringify(text));
  }
});

Deno.test("maskSecretsInText masks a message", () => {
  const patterns = secretPatterns(["hunter2"]);
  assert.equal(
    maskSecretsInText("fatal: could not read hunter2 from hunter", patterns),
    "fatal: could not read *** from hunter",
  );
  assert.equal(maskSecretsInText("plain", []), "plain");
});
