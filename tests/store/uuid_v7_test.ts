import assert from "node:assert/strict";
import { UuidV7Generator } from "../../src/store/uuid_v7.ts";
import { isUuid } from "../../src/protocol/job_id.ts";

Deno.test("UUIDv7 ids carry the time, version and variant, and sort in creation order", () => {
  const ids = new UuidV7Generator();
  const now = Date.UTC(2026, 10, 28, 12);
  const made = Array.from({ length: 5000 }, (_, i) => ids.next(now + Math.floor(i / 1000)));
  for (const id of made) {
    assert.ok(isUuid(id), id);
    assert.equal(id[14], "7");
    assert.match(id[19]!, /[89ab]/);
  }
  assert.deepEqual([...made].sort(), made, "same-millisecond ids stay ordered");
  assert.equal(new Set(made).size, made.length);
  assert.equal(parseInt(made[0]!.replaceAll("-", "").slice(0, 12), 16), now);
});

Deno.test("ids stay ordered when the clock steps back", () => {
  const ids = new UuidV7Generator();
  const a = ids.next(2_000_000);
  const b = ids.next(1_000_000);
  assert.ok(b > a);
});
