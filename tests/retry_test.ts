import assert from "node:assert/strict";
import { backoffDelayMs, DEFAULT_BACKOFF } from "../src/retry.ts";

Deno.test("backoff grows exponentially within [cap/2, cap] and stops at the maximum", () => {
  assert.equal(backoffDelayMs(0, DEFAULT_BACKOFF, () => 0), 50);
  assert.equal(backoffDelayMs(0, DEFAULT_BACKOFF, () => 0.999999), 100);
  assert.equal(backoffDelayMs(3, DEFAULT_BACKOFF, () => 0), 400);
  assert.equal(backoffDelayMs(30, DEFAULT_BACKOFF, () => 0.999999), 5000);
  assert.equal(backoffDelayMs(30, DEFAULT_BACKOFF, () => 0), 2500);
});
