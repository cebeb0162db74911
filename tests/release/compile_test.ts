/**
 * `deno task compile`. These machines cannot download Deno's base runtime
 * (denort), so here the build must fail with the DENORT_BIN explanation;
 * where the download works, the same test checks the binary it built.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { binaryName, explainMissingRuntime } from "../../scripts/compile.ts";
import { VERSION } from "../../src/version.ts";

const TARGET = "x86_64-unknown-linux-gnu";

async function compile(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile", ...args],
    cwd: new URL("../..", import.meta.url).pathname,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  // NO_COLOR keeps deno's own output free of escape codes.
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("a failed denort download is explained with DENORT_BIN; other failures are not", () => {
  const download =
    "error: Writing deno compile executable\nCaused by:\n    0: Setting up base binary.\n    1: error sending request for url (https://example.invalid/denort-x.zip): dns error";
  assert.match(
    explainMissingRuntime(download, TARGET)!,
    /DENORT_BIN=\/path\/to\/denort deno task compile --target x86_64-unknown-linux-gnu/,
  );
  assert.match(
    explainMissingRuntime("Caused by:\n 0: Could not find denort at '/opt/denort'", TARGET)!,
    /DENORT_BIN names \/opt\/denort, which does not exist/,
  );
  assert.equal(explainMissingRuntime("error: Module not found", TARGET), undefined);
  assert.equal(
    explainMissingRuntime("0: Setting up base binary.\n1: Permission denied (os error 13)", TARGET),
    undefined,
    "a failure that is not a download is not blamed on denort",
  );
});

Deno.test("an unknown --target is a usage error naming the targets", async () => {
  const result = await compile(["--target", "plan9-amd64"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--target plan9-amd64: not one of x86_64-unknown-linux-gnu, /);
});

Deno.test("DENORT_BIN naming a missing file is reported as such", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-dist-" });
  try {
    const result = await compile(["--target", TARGET, "--out-dir", dir], {
      DENORT_BIN: join(dir, "no-denort"),
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /DENORT_BIN names .*no-denort, which does not exist/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [], "no partial output");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compile builds the Linux binary, or explains how to when denort cannot be downloaded", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-dist-" });
  try {
    const env = { DENORT_BIN: "" };
    const result = await compile(["--target", TARGET, "--out-dir", dir], env);
    if (result.code === 0) {
      const binary = join(dir, binaryName(TARGET));
      const version = await new Deno.Command(binary, { args: ["--version"], stdout: "piped" })
        .output();
      assert.match(new TextDecoder().decode(version.stdout), new RegExp(`^${VERSION}`));
      const sums = await Deno.readTextFile(join(dir, "SHA256SUMS"));
      assert.match(sums, new RegExp(`^[0-9a-f]{64}  ${binaryName(TARGET)}\n$`));
      assert.match(result.stdout, /MB \(limit 110\.0 MB\)/, "the size is reported");
    } else {
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /could not download Deno's base runtime/);
      assert.match(
        result.stderr,
        /DENORT_BIN=\/path\/to\/denort deno task compile --target x86_64-unknown-linux-gnu/,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
