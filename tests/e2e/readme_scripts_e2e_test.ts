/**
 * The shell examples in the README's "Scripting airunner" section run as
 * written: each ```sh block goes to bash with an `airunner` command on PATH
 * (main.ts under Deno) and a real `airunner dev` behind AIRUNNER_SERVER.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startDev } from "../support/airunner_process.ts";

const README = new URL("../../README.md", import.meta.url);

/** The ```sh blocks of the README section titled `heading`. */
export function shellBlocksOf(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README has no "## ${heading}" section`);
  const rest = markdown.slice(start + heading.length + 5);
  const end = rest.search(/\n## /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
}

Deno.test("the README's scripting examples run as written", async () => {
  const blocks = shellBlocksOf(await Deno.readTextFile(README), "Scripting airunner");
  const [exitCodeScript, fanOutScript, retrySafeScript] = blocks;
  assert.ok(blocks.length === 3 && exitCodeScript && fanOutScript && retrySafeScript);

  await using dev = await startDev({ prefix: "airunner-readme-", workers: 3 });
  const { scratch } = dev;

  const run = dev.runScript;

  const exitCode = await run(exitCodeScript);
  assert.equal(exitCode.code, 0, exitCode.stderr);
  assert.equal(exitCode.stdout, "testing\ntests passed\n");

  const fanOut = await run(fanOutScript);
  assert.equal(fanOut.code, 0, fanOut.stderr);
  assert.equal(fanOut.stdout, "shard 1\nshard 2\nshard 3\n");

  const retrySafe = await run(retrySafeScript);
  assert.equal(retrySafe.code, 0, retrySafe.stderr);
  assert.equal(retrySafe.stdout, "nightly passed\n");
  assert.equal(await Deno.readTextFile(join(scratch, "nightly.log")), "nightly build\n");

  // The same request id started one job, not two.
  const list = await run("airunner list --json");
  assert.equal(list.code, 0, list.stderr);
  const jobs = JSON.parse(list.stdout) as { command: string }[];
  assert.equal(jobs.filter((j) => j.command.includes("echo nightly build")).length, 1);
});
