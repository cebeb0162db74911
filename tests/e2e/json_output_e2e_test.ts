/**
 * Listing filters and the --json of cancel, token and monitor, end to end
 * against `airunner dev`: list --owner/--since/--until/--limit/--metadata
 * find the jobs they name and list --json shows each job's metadata.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runAirunner, startDev } from "../support/airunner_process.ts";

Deno.test("list filters by owner, creation time, metadata and limit; --json shows metadata", async () => {
  await using dev = await startDev({ prefix: "airunner-list-filters-e2e-" });
  const submit = async (...flags: string[]) => {
    // A future start keeps each job waiting, so the listing does not change under the test.
    const r = await runAirunner([
      "submit",
      "--server",
      dev.server,
      "--delay",
      "1h",
      ...flags,
      "--",
      "true",
    ]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const a = await submit("--owner", "alice", "--metadata", "build=1");
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  const betweenIso = new Date().toISOString();
  const b = await submit("--owner", "bob", "--metadata", "build=1");
  const c = await submit("--owner", "alice", "--metadata", "build=2");
  const ids = async (...flags: string[]) => {
    const r = await runAirunner(["list", "--server", dev.server, "--json", ...flags]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { id: string }[]).map((j) => j.id);
  };
  assert.deepEqual(await ids("--owner", "alice"), [c, a]);
  assert.deepEqual(await ids("--metadata", "build=1"), [b, a]);
  assert.deepEqual(await ids("--owner", "alice", "--metadata", "build=1"), [a]);
  assert.deepEqual(await ids("--since", betweenIso), [c, b]);
  assert.deepEqual(await ids("--until", betweenIso), [a]);
  assert.deepEqual(await ids("--since", "1h"), [c, b, a]);
  assert.deepEqual(await ids("--until", "1h"), []);
  assert.deepEqual(await ids("--limit", "2"), [c, b]);
  const listed = JSON.parse(
    (await runAirunner(["list", "--server", dev.server, "--json", "--limit", "1"])).stdout,
  );
  assert.deepEqual(listed[0].metadata, { build: "2" });
  const bad = await runAirunner(["list", "--server", dev.server, "--until", "2026-01-01T00:00:00"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--until: "2026-01-01T00:00:00" has no time zone/);

  // cancel --json prints the job after the cancel.
  const cancelled = await runAirunner(["cancel", "--server", dev.server, "--json", a]);
  assert.equal(cancelled.code, 0, cancelled.stderr);
  assert.equal(JSON.parse(cancelled.stdout).state, "cancelled");
  assert.equal(JSON.parse(cancelled.stdout).id, a);

  // monitor --json of the cancelled job: JSON lines only, and its exit code.
  const monitored = await runAirunner(["monitor", "--server", dev.server, "--json", a]);
  assert.equal(monitored.code, 130, monitored.stderr);
  for (const line of monitored.stdout.trim().split("\n").filter((l) => l !== "")) {
    assert.equal(JSON.parse(line).jobId, a);
  }
});

Deno.test("token --json and token keygen --json print what they made", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-token-json-" });
  const keygen = await runAirunner(["token", "keygen", "--out", join(dir, "keys"), "--json"]);
  assert.equal(keygen.code, 0, keygen.stderr);
  const paths = JSON.parse(keygen.stdout);
  assert.equal(paths.privateKey, join(dir, "keys", "private.pem"));
  const before = Date.now();
  const minted = await runAirunner([
    "token",
    "--signing-key",
    paths.privateKey,
    "--subject",
    "ci",
    "--scope",
    "submit,worker",
    "--ttl",
    "2h",
    "--json",
  ]);
  assert.equal(minted.code, 0, minted.stderr);
  const token = JSON.parse(minted.stdout);
  assert.equal(token.subject, "ci");
  assert.deepEqual(token.scopes, ["submit", "worker"]);
  assert.match(token.token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const expires = Date.parse(token.expiresAt);
  assert.ok(Math.abs(expires - (before + 2 * 3600_000)) < 60_000, token.expiresAt);
  await Deno.remove(dir, { recursive: true });
});
