/**
 * The README's promise "every command has --json": each command that prints
 * data on stdout takes --json. The exceptions print no data: the services
 * (server, worker, dev, orchestrator) log, `completion` prints a shell
 * script, `backup` writes a file.
 */
import assert from "node:assert/strict";
import { COMMANDS } from "../../src/cli/command_index.ts";
import { runAirunner } from "../support/airunner_process.ts";

/** Commands without --json, and why. */
const NO_DATA: Record<string, string> = {
  server: "a service: it logs",
  worker: "a service: it logs",
  dev: "a service: it logs",
  orchestrator: "a service: it logs (orchestrator init reports on stderr)",
  completion: "prints a shell script to source",
  backup: "writes a file; reports on stderr",
};

/** Subcommands that print data, by their command. */
const SUBCOMMANDS: Record<string, string[]> = {
  schedule: ["add", "list", "get", "pause", "resume", "delete", "run"],
  token: ["keygen"],
};

Deno.test("every command that prints data takes --json", async () => {
  const lines: string[][] = [];
  for (const { name } of COMMANDS) {
    if (NO_DATA[name] !== undefined) continue;
    if (SUBCOMMANDS[name] === undefined || name === "token") lines.push([name]);
    for (const sub of SUBCOMMANDS[name] ?? []) lines.push([name, sub]);
  }
  const helps = await Promise.all(lines.map((words) => runAirunner([...words, "--help"])));
  const missing = lines.filter((_, i) => !/^\s+--json\b/m.test(helps[i]!.stdout));
  assert.deepEqual(missing, [], `without --json: ${missing.map((w) => w.join(" ")).join(", ")}`);
  // The exceptions are real commands, so the list cannot go stale.
  for (const name of Object.keys(NO_DATA)) {
    assert.ok(COMMANDS.some((c) => c.name === name), `${name} is no command`);
  }
});
