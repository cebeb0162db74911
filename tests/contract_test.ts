/**
 * The wire contract: gen/ is exactly what `deno task gen` makes from proto/
 * (generated code is regenerated, never edited), buf lint is clean, and the
 * contract stays compatible with its first committed version
 * (proto/baseline.binpb, built from that commit with `buf build`).
 */
import assert from "node:assert/strict";
import denoConfig from "../deno.json" with { type: "json" };
import { runBuf } from "../scripts/buf.ts";
import { liteSource } from "../scripts/gen_lite.ts";

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
    // gen_lite derives job_lite.ts from job_pb.ts, checked fresh just below.
    fresh.set("job/v1/job_lite.ts", liteSource());
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

Deno.test("the contract has no breaking change against its first committed version", async () => {
  const result = await runBuf(["breaking", "--against", "proto/baseline.binpb"]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
});

Deno.test("the breaking-change check catches a renumbered field", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${tmp}/proto/job/v1`, { recursive: true });
    const proto = await Deno.readTextFile(`${root}proto/job/v1/job.proto`);
    const broken = proto.replace(
      "string job_id = 1;\n  JobParams job_params = 2;",
      "string job_id = 99;\n  JobParams job_params = 2;",
    );
    assert.notEqual(broken, proto);
    await Deno.writeTextFile(`${tmp}/proto/job/v1/job.proto`, broken);
    await Deno.copyFile(`${root}buf.yaml`, `${tmp}/buf.yaml`);
    const result = await runBuf(["breaking", tmp, "--against", `${root}proto/baseline.binpb`]);
    assert.notEqual(result.code, 0);
    assert.match(result.stdout + result.stderr, /job_id/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
