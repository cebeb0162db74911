/** The JSON nesting scan that runs before JSON.parse (src/server/json_depth.ts). */
import assert from "node:assert/strict";
import { nestsDeeperThan } from "../../src/server/json_depth.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("nesting is counted over objects and arrays, the top-level value being depth 1", () => {
  assert.equal(nestsDeeperThan(bytes("{}"), 0), true);
  assert.equal(nestsDeeperThan(bytes("{}"), 1), false);
  assert.equal(nestsDeeperThan(bytes('{"a":[{"b":[1]}]}'), 4), false);
  assert.equal(nestsDeeperThan(bytes('{"a":[{"b":[1]}]}'), 3), true);
  // Siblings do not add up: depth goes down again as values close.
  assert.equal(nestsDeeperThan(bytes("[[1],[2],[3],[[4]]]"), 3), false);
  assert.equal(nestsDeeperThan(bytes("1"), 0), false);
});

Deno.test("brackets inside strings, escaped quotes included, do not count", () => {
  assert.equal(nestsDeeperThan(bytes('{"a":"[[[[{{{{"}'), 1), false);
  assert.equal(nestsDeeperThan(bytes('{"a":"\\"[[[[","b":"\\\\"}'), 1), false);
  assert.equal(nestsDeeperThan(bytes('{"a":"\\\\",  "b":[[[]]]}'), 3), true);
  assert.equal(nestsDeeperThan(bytes('{"ünï[":"ü[[["}'), 1), false);
});

Deno.test("megabytes of brackets are refused without parsing them", () => {
  const deep = bytes("[".repeat(4_000_000) + "]".repeat(4_000_000));
  assert.equal(nestsDeeperThan(deep, 64), true);
  const sixtyFour = bytes("[".repeat(64) + "]".repeat(64));
  assert.equal(nestsDeeperThan(sixtyFour, 64), false);
  assert.equal(nestsDeeperThan(bytes("[".repeat(65) + "]".repeat(65)), 64), true);
});
