/**
 * A server started on a full disk, as real processes: `airunner dev` runs a
 * job on a 4 MiB tmpfs and stops cleanly (so SQLite removed its -wal and
 * -shm files, which a full disk has no room to make again); the disk is
 * filled; `airunner server` starts on it, serves get, list and logs, says
 * once why writes fail, and `submit` prints the reason. Deleting the filler
 * lets the next submit through, without a restart.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  freePort,
  runAirunner,
  startAirunner,
  waitForHealth,
} from "../support/airunner_process.ts";
import { mountTmpfs, tmpfsUnavailable } from "../support/tmpfs.ts";

const noTmpfs = await tmpfsUnavailable();
if (noTmpfs !== undefined) console.warn(`full-disk e2e test skipped: ${noTmpfs}`);

/**
 * Runs a job under `airunner dev`, stops it with `stopSignal`, fills the
 * disk, and checks a server started on it.
 */
async function startOnFullDisk(stopSignal: "SIGINT" | "SIGKILL"): Promise<void> {
  await using disk = await mountTmpfs(4 * 1024 * 1024);
  const dataDir = join(disk.dir, "data");
  const port = freePort();
  const server = `http://127.0.0.1:${port}`;
  const env = { AIRUNNER_SERVER: server };
  const listen = ["--listen", `127.0.0.1:${port}`, "--data-dir", dataDir];

  const dev = startAirunner(["dev", ...listen]);
  let jobId: string;
  try {
    await waitForHealth(server);
    const ran = await runAirunner(["submit", "--follow", "--", "echo", "hello from before"], {
      env,
    });
    assert.equal(ran.code, 0, ran.stderr);
    const listed = await runAirunner(["list", "--json"], { env });
    jobId = JSON.parse(listed.stdout)[0].id;
  } finally {
    const stopped = await dev.stop(stopSignal);
    if (stopSignal === "SIGINT") assert.equal(stopped.code, 0, stopped.stderr);
  }
  const left = [...Deno.readDirSync(dataDir)].map((e) => e.name).sort();
  // A clean stop removes -shm (and a full disk has no room for a new
  // one); kill -9 leaves it, and the WAL, behind.
  assert.equal(left.includes("airunner.db-shm"), stopSignal === "SIGKILL", `${left}`);

  await disk.fill();
  assert.ok(disk.freeBytes() < 4096, `the disk is full (${disk.freeBytes()} bytes free)`);

  const full = startAirunner(["server", "--no-auth", ...listen]);
  let stderr = "";
  try {
    await waitForHealth(server);
    const got = await runAirunner(["get", jobId, "--json"], { env });
    assert.equal(got.code, 0, got.stderr);
    assert.equal(JSON.parse(got.stdout).state, "completed");
    const listed = await runAirunner(["list", "--json"], { env });
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout).map((j: { id: string }) => j.id), [jobId]);
    const logs = await runAirunner(["logs", jobId], { env });
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /hello from before/);

    for (let i = 0; i < 5; i++) {
      const refused = await runAirunner(["submit", "--", "true"], { env });
      assert.equal(refused.code, 1, refused.stderr);
      assert.equal(
        refused.stderr.trim(),
        `airunner: error: no space left for the job store in ${dataDir} (resource_exhausted)`,
      );
    }

    await disk.free();
    const accepted = await runAirunner(["submit", "--", "true"], { env });
    assert.equal(accepted.code, 0, accepted.stderr);
  } finally {
    const stopped = await full.stop();
    stderr = stopped.stderr;
    assert.equal(stopped.code, 0, stderr);
  }
  const said = stderr.split("\n").filter((line) =>
    line.includes(`no space left for the job store in ${dataDir}`)
  );
  assert.equal(said.length, 1, `said once why writes fail:\n${stderr}`);
  assert.match(said[0]!, /reads go on/);
  assert.match(stderr, /takes writes again/);
  assert.doesNotMatch(stderr, /internal error|cannot rollback/);
}

Deno.test({
  name:
    "a server started on a full disk after a clean stop serves get, list and logs, and says why submit fails",
  ignore: noTmpfs !== undefined,
  fn: () => startOnFullDisk("SIGINT"),
});

Deno.test({
  name:
    "a server started on a full disk after kill -9 serves get, list and logs, and says why submit fails",
  ignore: noTmpfs !== undefined,
  fn: () => startOnFullDisk("SIGKILL"),
});
