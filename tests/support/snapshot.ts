/**
 * Snapshot assertions: text pinned in tests/cli/snapshots/. Run the tests
 * with UPDATE_SNAPSHOTS=1 to write new snapshots after a deliberate change.
 *
 * @module
 */
import assert from "node:assert/strict";

const DIR = new URL("../cli/snapshots/", import.meta.url).pathname;

/** Asserts that `actual` equals the snapshot `name` (or writes it when updating). */
export async function assertSnapshot(name: string, actual: string): Promise<void> {
  const path = `${DIR}${name}`;
  if (Deno.env.get("UPDATE_SNAPSHOTS") === "1") {
    await Deno.writeTextFile(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = await Deno.readTextFile(path);
  } catch {
    throw new Error(`no snapshot ${path}; run the tests with UPDATE_SNAPSHOTS=1 to write it`);
  }
  assert.equal(actual, expected, `snapshot ${name} differs; UPDATE_SNAPSHOTS=1 rewrites it`);
}
