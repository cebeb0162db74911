import assert from "node:assert/strict";
import { chunksOf, compareStrings, groupBy, settleBounded } from "../../src/store/aws/batching.ts";

Deno.test("settleBounded answers each item in input order, at most `limit` at a time", async () => {
  let running = 0;
  let most = 0;
  const outcomes = await settleBounded([1, 2, 3, 4, 5], 2, async (n) => {
    running++;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, 5 - n));
    running--;
    if (n === 3) throw new Error("three");
    return n * 10;
  });
  assert.equal(most, 2);
  assert.deepEqual(outcomes.map((o) => o.ok ? o.value : (o.error as Error).message), [
    10,
    20,
    "three",
    40,
    50,
  ]);
  assert.deepEqual(await settleBounded([], 8, () => Promise.resolve(1)), []);
});

Deno.test("chunksOf, groupBy and compareStrings", () => {
  assert.deepEqual(chunksOf([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  assert.deepEqual(chunksOf([], 10), []);
  const groups = groupBy(["b1", "a1", "b2"], (s) => s[0]!);
  assert.deepEqual([...groups], [["b", ["b1", "b2"]], ["a", ["a1"]]]);
  assert.deepEqual(["b", "a", "c"].sort(compareStrings), ["a", "b", "c"]);
});
