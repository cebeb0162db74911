/**
 * gen/ must be exactly what `deno task gen` makes from proto/: generated
 * code is regenerated, never edited.
 */
import assert from "node:assert/strict";
import denoConfig from "../deno.json" with { type: "json" };
import { runBuf } from "../scripts/buf.ts";

const root = new URL("..", import.meta.url).pathname;

async function filesUnder(dir: string, prefix = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) {
      for (const [k, v] of await filesUnder(dir, rel)) out.set(k, v);
    } else {
      out.set(rel, await Deno.readTextFile(`${dir}/${rel}`));
    }
  }
  return out;
}

Deno.test("gen/ matches what proto/ generates", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const result = await runBuf(["generate", "--output", tmp]);
    assert.equal(result.code, 0, result.stderr);
    const fresh = await filesUnder(`${tmp}/gen`);
    const committed = await filesUnder(`${root}gen`);
    assert.deepEqual([...committed.keys()].sort(), [...fresh.keys()].sort());
    for (const [path, text] of fresh) {
      assert.ok(committed.get(path) === text, `gen/${path} is stale: run "deno task gen"`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("buf lint passes", async () => {
  const result = await runBuf(["lint"]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
});

Deno.test("the protoc-gen-es in buf.gen.yaml is the version deno.json pins", async () => {
  const genConfig = await Deno.readTextFile(`${root}buf.gen.yaml`);
  assert.ok(genConfig.includes(denoConfig.imports["@bufbuild/protoc-gen-es"]));
});
