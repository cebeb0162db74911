/**
 * The pure part of following many jobs at once (src/cli/multi_follow.ts):
 * short ids unique among the set, prefixes, whole lines per job and
 * stream, and the worst exit code.
 */
import assert from "node:assert/strict";
import {
  LineBuffer,
  linePrefix,
  MAX_LINE_BYTES,
  parsePrefix,
  PrefixedOutput,
  prefixLabels,
  shortJobIds,
  worstExitCode,
} from "../../src/cli/multi_follow.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : decoder.decode(bytes);

// UUIDv7s submitted together: the same time digits first, random tails.
const A = "0193a1b2-c3d4-7e5f-8a6b-3f9a2c1d0e11";
const B = "0193a1b2-c3d4-7e60-9b7c-80be11c4ff02";
const C = "0193a1b2-c3d4-7e61-a8d9-80be11c4aa03";

Deno.test("short ids: 8 digits of the random tail, more where two would be equal", () => {
  const names = shortJobIds([A, B, C, A]);
  assert.deepEqual([...names], [[A, "3f9a2c1d"], [B, "80be11c4f"], [C, "80be11c4a"]]);
  // Equal tails (never in practice) fall back to the whole ids.
  const twin = "0193a1b2-c3d4-7e62-a8d9-3f9a2c1d0e11";
  assert.deepEqual([...shortJobIds([A, twin]).values()], [A, twin]);
  // Other ids are shortened from their end.
  assert.deepEqual([...shortJobIds(["job-0000000001", "job-0000000002"]).values()], [
    "00000001",
    "00000002",
  ]);
  assert.deepEqual([...shortJobIds(["a", "b"]).values()], ["a", "b"]);
});

Deno.test("prefixes: the short id, a metadata value, or none; padded to one width", () => {
  const jobs = [
    { jobId: A, metadata: { shard: "1" } },
    { jobId: B, metadata: { shard: "10" } },
    { jobId: C, metadata: {} },
  ];
  assert.deepEqual([...prefixLabels(jobs, parsePrefix("id")).values()], [
    "3f9a2c1d ",
    "80be11c4f",
    "80be11c4a",
  ]);
  assert.deepEqual([...prefixLabels(jobs, parsePrefix("shard")).values()], [
    "1        ",
    "10       ",
    "80be11c4a",
  ]);
  assert.deepEqual([...prefixLabels(jobs, parsePrefix("none")).values()], ["", "", ""]);
  assert.equal(linePrefix("3f9a2c1d", 0, false), "3f9a2c1d | ");
  assert.equal(linePrefix("3f9a2c1d", 1, true), "\x1b[35m3f9a2c1d\x1b[0m | ");
  assert.equal(linePrefix("", 1, true), "");
});

Deno.test("a line buffer gives whole lines and keeps the rest until its newline", () => {
  const lines = new LineBuffer();
  assert.deepEqual(lines.push(encoder.encode("one\ntw")).map(text), ["one\n"]);
  assert.deepEqual(lines.push(encoder.encode("o")).map(text), []);
  assert.deepEqual(lines.push(encoder.encode("\nthree\nfour\nfi")).map(text), [
    "two\n",
    "three\n",
    "four\n",
  ]);
  assert.equal(text(lines.flush()), "fi\n", "the rest, ended");
  assert.equal(lines.flush(), undefined);
  // A line that never ends is cut at the limit.
  const long = new LineBuffer();
  const pieces = long.push(new Uint8Array(MAX_LINE_BYTES * 2 + 10).fill(0x79));
  assert.deepEqual(pieces.map((p) => p.byteLength), [MAX_LINE_BYTES + 1, MAX_LINE_BYTES + 1]);
  assert.equal(long.flush()?.byteLength, 11);
});

Deno.test("many jobs' output: whole prefixed lines per job and stream, the rest at the end", () => {
  const labels = prefixLabels(
    [{ jobId: A, metadata: {} }, { jobId: B, metadata: {} }],
    { kind: "id" },
  );
  const out = new PrefixedOutput(labels, { stdout: false, stderr: false });
  assert.equal(text(out.chunk(A, "stdout", encoder.encode("a1\na2"))), "3f9a2c1d | a1\n");
  assert.equal(out.chunk(B, "stdout", encoder.encode("b")), undefined, "half a line waits");
  assert.equal(text(out.chunk(A, "stderr", encoder.encode("e1\n"))), "3f9a2c1d | e1\n");
  assert.equal(
    text(out.chunk(B, "stdout", encoder.encode("1\nb2\n"))),
    "80be11c4 | b1\n80be11c4 | b2\n",
  );
  assert.equal(
    text(out.line(B, "stderr", "airunner: attempt 2")),
    "80be11c4 | airunner: attempt 2\n",
  );
  const rest = out.flush(A);
  assert.deepEqual([text(rest.stdout), text(rest.stderr)], ["3f9a2c1d | a2\n", undefined]);
  assert.deepEqual(out.flush(B), { stdout: undefined, stderr: undefined });
  // Colour per stream, only where asked (a terminal, without NO_COLOR).
  const coloured = new PrefixedOutput(labels, { stdout: true, stderr: false });
  assert.equal(
    text(coloured.chunk(A, "stdout", encoder.encode("x\n"))),
    "\x1b[36m3f9a2c1d\x1b[0m | x\n",
  );
  assert.equal(text(coloured.chunk(A, "stderr", encoder.encode("x\n"))), "3f9a2c1d | x\n");
  // No prefix: lines stay whole all the same.
  const bare = new PrefixedOutput(prefixLabels([{ jobId: A, metadata: {} }], { kind: "none" }), {
    stdout: true,
    stderr: true,
  });
  assert.equal(bare.chunk(A, "stdout", encoder.encode("par")), undefined);
  assert.equal(text(bare.chunk(A, "stdout", encoder.encode("tial\n"))), "partial\n");
});

Deno.test("the worst exit code is the highest, 0 when all are 0", () => {
  assert.equal(worstExitCode([0, 3, 0, 1]), 3);
  assert.equal(worstExitCode([0, 0]), 0);
  assert.equal(worstExitCode([]), 0);
  assert.equal(worstExitCode([130, 124]), 130);
});
