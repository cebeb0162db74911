import assert from "node:assert/strict";
import { VERSION } from "../../src/version.ts";
import { AIRUNNER_RUN_FLAGS } from "../../scripts/airunner_argv.ts";
import { freePort, runAirunner } from "../support/airunner_process.ts";

const SUBCOMMANDS = [
  "server",
  "worker",
  "submit",
  "monitor",
  "list",
  "redrive",
  "rerun",
  "token",
  "orchestrator",
  "dev",
];

Deno.test("airunner --help lists every subcommand; each has its own --help", async () => {
  const help = await runAirunner(["--help"]);
  assert.equal(help.code, 0);
  for (const name of SUBCOMMANDS) assert.match(help.stdout, new RegExp(`^  ${name}\\b`, "m"), name);
  const each = await Promise.all(SUBCOMMANDS.map((name) => runAirunner([name, "--help"])));
  each.forEach((result, i) => {
    assert.equal(result.code, 0, SUBCOMMANDS[i]);
    assert.match(result.stdout, new RegExp(`Usage: airunner ${SUBCOMMANDS[i]}`));
  });
});

Deno.test("airunner --version prints the version", async () => {
  const result = await runAirunner(["--version"]);
  assert.equal(result.code, 0);
  assert.equal(result.stdout.trim(), VERSION);
});

Deno.test("unknown commands and flags are one-line usage errors with exit code 2", async () => {
  for (
    const args of [["bogus"], ["submit", "--bogus", "--", "true"], ["list", "--state", "nope"]]
  ) {
    const result = await runAirunner(args);
    assert.equal(result.code, 2, args.join(" "));
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, /^airunner: error: /);
  }
  const typo = await runAirunner(["lst"]);
  assert.equal(typo.stderr, "airunner: error: unknown command 'lst' (did you mean list?)\n");
});

Deno.test("submit without a command, or with bad values, is a usage error", async () => {
  for (
    const [args, pattern] of [
      [["submit"], /nothing to run/],
      [["submit", "--timeout", "soon", "--", "true"], /--timeout: "soon" is not a duration/],
      [["submit", "--env", "NOVALUE", "--", "true"], /--env: "NOVALUE" is not KEY=VALUE/],
      [["submit", "--server", "ftp://x", "--", "true"], /must start with http:\/\/ or https:\/\//],
      [["monitor", "not-a-uuid"], /JOB_ID: is not a UUID/],
      [["dev", "--listen", "0.0.0.0:0"], /dev listens on loopback only/],
      [["submit", "--queue", "bad queue!", "--", "true"], /--queue: may contain only/],
      [["submit", "--queue", "", "--", "true"], /--queue: is required/],
      [
        ["submit", "--timeout", "100d", "--", "true"],
        /--timeout: must be at most 7 days/,
      ],
      [["submit", "--request-id", "", "--", "true"], /--request-id: must not be empty/],
      [
        ["submit", "--commit=--upload-pack=touch pwned; false", "file:///r", "--", "true"],
        /^airunner: error: --commit: must be a hex object id \(4 to 64 hex digits\)$/m,
      ],
      [
        ["submit", "--branch=--upload-pack=x", "file:///r", "--", "true"],
        /--branch: is not a valid git branch name: must not begin with '-'/,
      ],
      [
        ["submit", "--batch", "-", "--commit=-x", "file:///r"],
        /--commit: must be a hex object id/,
      ],
    ] as const
  ) {
    const result = await runAirunner(args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, pattern);
  }
});

Deno.test("a client command says clearly when the server cannot be reached (exit 125)", async () => {
  const server = `http://127.0.0.1:${freePort()}`;
  const result = await runAirunner(["list", "--server", server]);
  assert.equal(result.code, 125);
  assert.match(
    result.stderr,
    /^airunner: error: cannot reach the server at http:\/\/127\.0\.0\.1:\d+/,
  );
  const viaEnv = await runAirunner(["submit", "--", "true"], { env: { AIRUNNER_SERVER: server } });
  assert.equal(viaEnv.code, 125);
  assert.match(viaEnv.stderr, new RegExp(`cannot reach the server at ${server}`));
});

Deno.test("deno task airunner and dev run with the same flags as the tests and benchmarks", async () => {
  const { default: config } = await import("../../deno.json", { with: { type: "json" } });
  const flags = AIRUNNER_RUN_FLAGS.join(" ");
  // The flags hold --node-modules-dir=manual, so each task fills node_modules
  // first (about 30 ms when it is current): a fresh clone needs no extra step.
  const install = "deno install --frozen --quiet &&";
  assert.equal(config.tasks.airunner, `${install} deno run ${flags} main.ts`);
  assert.equal(config.tasks.dev, `${install} deno run ${flags} main.ts dev`);
});
