/**
 * The end-to-end suite against airunner bundled into one file in a temp
 * dir, run with no config: any file airunner reads from the source tree at
 * run time (assets, migrations, descriptors) would be missing there, as it
 * is in the compiled binary. Runs after the main suite (see deno.json's
 * test task), so the two do not compete for the machine.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { VERSION } from "../../src/version.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("the end-to-end suite passes with airunner bundled away from the repository", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-bundle-" });
  try {
    const bundle = join(dir, "airunner.js");
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--platform", "deno", "--output", bundle, "main.ts"],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(built.success, new TextDecoder().decode(built.stderr));

    // Run from the temp dir, where nothing of the repository is around.
    const version = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "-A", bundle, "--version"],
      cwd: dir,
      stdout: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(version.stdout).trim(), VERSION);

    const suite = await new Deno.Command(Deno.execPath(), {
      // tests/telemetry stays out: under an esbuild bundle with OTEL_DENO
      // on, processes sometimes do not exit (not seen from source; the
      // compiled binary is built from the module graph, not this bundle).
      args: ["test", "--allow-all", "--parallel", "tests/e2e/"],
      cwd: ROOT,
      env: { AIRUNNER_ENTRYPOINT: bundle },
      // A hang fails the test instead of holding CI.
      signal: AbortSignal.timeout(8 * 60_000),
      stdout: "piped",
      stderr: "piped",
    }).output();
    const ESC = String.fromCharCode(27);
    const output = (new TextDecoder().decode(suite.stdout) + new TextDecoder().decode(suite.stderr))
      .replaceAll(new RegExp(`${ESC}\\[[0-9;]*m`, "g"), "");
    const summary = /(ok|FAILED) \| (\d+) passed.*\| (\d+) failed/.exec(output);
    assert.ok(suite.success, output.slice(-4000));
    assert.ok(Number(summary?.[2]) >= 20, `the e2e suite ran (${summary?.[0]})`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
