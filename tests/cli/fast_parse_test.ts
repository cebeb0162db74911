/**
 * parseFast (src/cli/command_spec.ts) against commander on the same specs:
 * for every sample command line, either parseFast declines it (and
 * commander runs) or it gives the action exactly what commander gives; an
 * ordinary line is never declined, and a line commander refuses always is.
 *
 * Environment variables: each spec's variables are renamed for the test
 * (AIRUNNER_FAST_PARSE_TEST_*), so setting them touches nothing else
 * running in this process.
 */
import assert from "node:assert/strict";
import type { CommandContext } from "../../src/cli/command_index.ts";
import { type CommandSpec, type ParsedCommandLine, parseFast } from "../../src/cli/command_spec.ts";
import { commanderOf } from "../../src/cli/commander_of.ts";
import { cancelSpec } from "../../src/cli/cancel.ts";
import { getSpec } from "../../src/cli/get.ts";
import { listSpec } from "../../src/cli/list.ts";
import { submitSpec } from "../../src/cli/submit.ts";

const CONTEXT: CommandContext = {
  setExitCode: () => {},
  trailing: () => undefined,
  program: () => {
    throw new Error("no program in this test");
  },
};

const ID = "01a23c96-5b47-7776-805b-a4fa6ef28316";

/** `spec` with its environment variables renamed out of everyone's way. */
function isolated(spec: CommandSpec): CommandSpec {
  return {
    ...spec,
    options: spec.options.map((o) =>
      o.env === undefined
        ? o
        : { ...o, env: o.env.replace(/^AIRUNNER_/, "AIRUNNER_FAST_PARSE_TEST_") }
    ),
  };
}

/** What commander hands the action for `argv`, or undefined when it refuses it. */
function viaCommander(spec: CommandSpec, argv: readonly string[]): ParsedCommandLine | undefined {
  let captured: ParsedCommandLine | undefined;
  const command = commanderOf({
    ...spec,
    run: (parsed) => {
      captured = parsed;
      return Promise.resolve();
    },
  });
  command.exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
  try {
    // The action runs (and captures) before parse returns.
    command.parse([...argv], { from: "user" });
  } catch {
    return undefined;
  }
  return captured;
}

interface Sample {
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** An ordinary line: parseFast must take it. */
  readonly fast?: true;
}

function check(spec: CommandSpec, samples: readonly Sample[]): void {
  const mine = isolated(spec);
  for (const sample of samples) {
    const env = Object.entries(sample.env ?? {}).map(([k, v]) =>
      [k.replace(/^AIRUNNER_/, "AIRUNNER_FAST_PARSE_TEST_"), v] as const
    );
    for (const [k, v] of env) Deno.env.set(k, v);
    try {
      const expected = viaCommander(mine, sample.argv);
      const fast = parseFast(mine, sample.argv, (name) => Deno.env.get(name));
      const what = `${spec.name} ${JSON.stringify(sample.argv)} ${
        JSON.stringify(sample.env ?? {})
      }`;
      if (expected === undefined) assert.equal(fast, undefined, `${what}: commander refuses it`);
      else if (fast !== undefined) assert.deepEqual(fast, expected, what);
      if (sample.fast === true) assert.notEqual(fast, undefined, `${what}: should be taken`);
    } finally {
      for (const [k] of env) Deno.env.delete(k);
    }
  }
}

/** Lines every client command reads alike. */
const CLIENT_FLAG_SAMPLES: readonly Sample[] = [
  { argv: ["--server", "http://h:1"], fast: true },
  { argv: ["--server=http://h:1", "--token", "t", "--ca-cert", "ca.pem"], fast: true },
  { argv: [], env: { AIRUNNER_SERVER: "http://env:2", AIRUNNER_TOKEN: "envtoken" }, fast: true },
  { argv: ["--server", "http://h:1"], env: { AIRUNNER_SERVER: "http://env:2" }, fast: true },
  { argv: ["--server"] },
  { argv: ["--server", "--token", "t"] },
  { argv: ["--nope"] },
  { argv: ["-h"] },
  { argv: ["--help"] },
  { argv: ["--server", "a", "--server", "b"] },
];

function withId(samples: readonly Sample[]): Sample[] {
  return samples.map((s) => ({ ...s, argv: [ID, ...s.argv] }));
}

Deno.test("get: parseFast reads what commander reads, or leaves it to commander", () => {
  check(getSpec(CONTEXT), [
    ...withId(CLIENT_FLAG_SAMPLES),
    { argv: [ID], fast: true },
    { argv: [ID, "--json"], fast: true },
    { argv: ["--json", ID, "--show-env"], fast: true },
    { argv: [ID, "--timeout", "5s"], fast: true },
    { argv: [ID, "--timeout=5s"], fast: true },
    { argv: [] },
    { argv: [ID, "extra"] },
    { argv: [ID, "--json=yes"] },
    { argv: [ID, "--"] },
    { argv: ["-"] },
  ]);
});

Deno.test("cancel: parseFast reads what commander reads, or leaves it to commander", () => {
  check(cancelSpec(CONTEXT), [
    ...withId(CLIENT_FLAG_SAMPLES),
    { argv: [ID], fast: true },
    { argv: [ID, "--reason", "superseded by a newer build"], fast: true },
    { argv: [ID, "--reason="], fast: true },
    { argv: ["--reason", "r", ID], fast: true },
    { argv: [ID, "--reason"] },
  ]);
});

Deno.test("list: parseFast reads what commander reads, or leaves it to commander", () => {
  check(listSpec(CONTEXT), [
    ...CLIENT_FLAG_SAMPLES,
    { argv: [], fast: true },
    { argv: ["--state", "failed", "--queue", "q"], fast: true },
    { argv: ["--output=wide", "--watch"], fast: true },
    { argv: ["--page", "2", "--page-size", "5", "--json", "--show-env"], fast: true },
    { argv: ["--state", "nope"] },
    { argv: ["--output", "yaml"] },
    { argv: ["stray"] },
  ]);
});

Deno.test("submit: parseFast reads what commander reads, or leaves it to commander", () => {
  check(submitSpec(CONTEXT), [
    ...CLIENT_FLAG_SAMPLES.filter((s) => s.argv.length > 0),
    { argv: [], fast: true },
    { argv: ["https://example.com/repo.git", "--branch", "main"], fast: true },
    {
      argv: ["--queue", "q", "--env", "A=1", "--env", "B=2", "--metadata", "k=v", "--follow"],
      fast: true,
    },
    { argv: ["--command", "c", "--arg", "a", "--arg", "b", "--wait", "--json"], fast: true },
    { argv: ["--secret-env", "TOKEN", "--env-file", "e.env", "--timeout", "90s"], fast: true },
    { argv: ["--process-type", "pty", "--cancel-on-interrupt"], fast: true },
    { argv: ["--call-timeout", "3s", "--request-id", "r-1", "--owner", "me"], fast: true },
    { argv: ["--config", "job.yaml", "--workdir", "sub", "--commit", "abc123"], fast: true },
    { argv: [], env: { AIRUNNER_QUEUE: "from-env", AIRUNNER_CALL_TIMEOUT: "4s" }, fast: true },
    { argv: ["--queue", "flag"], env: { AIRUNNER_QUEUE: "from-env" }, fast: true },
    { argv: ["--batch", "jobs.jsonl"], fast: true },
    { argv: ["--retries", "2", "--retry-on", "1,75-78", "--retry-delay", "1s..5m"], fast: true },
    { argv: ["--no-retry-on-timeout", "--retries=3"], fast: true },
    { argv: ["--no-retry-on-timeout=yes"] },
    { argv: ["--retry-on-timeout"] },
    { argv: ["--batch", "-"] },
    { argv: ["--process-type", "tty"] },
    { argv: ["repo-a", "repo-b"] },
    { argv: ["--env"] },
  ]);
});
