/**
 * The CLI for people and scripts, driven as a process against a real
 * `airunner dev`: every client command and flag, every reserved exit code,
 * job-file precedence, and the JSON shapes (pinned as snapshots).
 */
import assert from "node:assert/strict";
import {
  airunnerInvocation,
  freePort,
  runAirunner,
  startDev,
} from "../support/airunner_process.ts";
import { assertSnapshot } from "../support/snapshot.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The keys of a JSON value, recursively, with their types: its shape, not its data. */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shapeOf(value[0])];
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, shapeOf(v)]),
    );
  }
  return value === null ? "null" : typeof value;
}

Deno.test("the CLI against a real dev server", async (t) => {
  await using dev = await startDev({ prefix: "airunner-cli-e2e-", workers: 2 });
  const { server, scratch: dataDir } = dev;
  const env = { AIRUNNER_SERVER: server, USER: "tester" };
  const cli = (...args: string[]) => runAirunner(args, { env });
  const submit = async (...args: string[]) => {
    const r = await cli("submit", ...args);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  /** Submits, waits for the end, and returns the job id (from --json). */
  const submitAndWait = async (...args: string[]) => {
    const r = await cli("submit", "--wait", "--json", ...args);
    return JSON.parse(r.stdout).id as string;
  };

  await t.step("submit takes every job field as a flag", async () => {
    const envFile = `${dataDir}/job.env`;
    await Deno.writeTextFile(
      envFile,
      '# comment\nFROM_FILE=file\nexport BOTH=file\nQUOTED="a b"\n',
    );
    const args = [
      "--env-file",
      envFile,
      "--env",
      "BOTH=flag",
      "--metadata",
      "team=ci",
      "--owner",
      "ada",
      "--workdir",
      "/tmp",
      "--timeout",
      "5m",
      "--request-id",
      "cli-e2e-1",
      "--",
      "sh",
      "-c",
      'echo "$FROM_FILE $BOTH $QUOTED $(pwd)"',
    ];
    const id = await submit(...args);
    assert.match(id, UUID);
    const got = JSON.parse((await cli("get", id, "--json", "--show-env")).stdout);
    assert.equal(got.owner, "ada");
    assert.deepEqual(got.metadata, { team: "ci" });
    assert.deepEqual(got.environment, { FROM_FILE: "file", BOTH: "flag", QUOTED: "a b" });
    assert.equal(got.workingDirectory, "/tmp");
    assert.equal(got.timeoutSeconds, 300);
    assert.equal(await submit(...args), id, "the same request id returns the same job");
    const logs = await cli("logs", "-f", id);
    assert.equal(logs.stdout, "file flag a b /tmp\n");
    const hidden = JSON.parse((await cli("get", id, "--json")).stdout);
    assert.deepEqual(hidden.environment, { FROM_FILE: "***", BOTH: "***", QUOTED: "***" });
    const human = await cli("get", id);
    assert.match(human.stdout, /^env: +BOTH=\*\*\*$/m);
    const listed = JSON.parse((await cli("list", "--json")).stdout);
    const entry = listed.find((j: { id: string }) => j.id === id);
    assert.deepEqual(entry.environment, { FROM_FILE: "***", BOTH: "***", QUOTED: "***" });
    const listedWithEnv = JSON.parse((await cli("list", "--json", "--show-env")).stdout);
    assert.equal(listedWithEnv.find((j: { id: string }) => j.id === id).environment.BOTH, "flag");
    assert.match(human.stdout, /^owner: +ada$/m);
  });

  await t.step("a job file gives defaults; flags win, --env/--metadata key by key", async () => {
    const yaml = `${dataDir}/job.yaml`;
    await Deno.writeTextFile(
      yaml,
      [
        "command: sh",
        "args: [-c, 'echo $A $B; exit 5']",
        "environment: { A: file-a, B: file-b }",
        "metadata: { from: file }",
        "owner: file-owner",
        "queue: default",
        "timeout: 60",
        "processType: pipe",
      ].join("\n"),
    );
    const r = await cli(
      "submit",
      "--config",
      yaml,
      "--env",
      "B=flag-b",
      "--owner",
      "flag-owner",
      "--follow",
    );
    assert.equal(r.code, 5);
    assert.equal(r.stdout, "file-a flag-b\n");
    const json = `${dataDir}/job.json`;
    await Deno.writeTextFile(json, JSON.stringify({ command: "true", metadata: { a: "1" } }));
    const id = await submit("--config", json, "--metadata", "b=2");
    const got = JSON.parse((await cli("get", id, "--json")).stdout);
    assert.deepEqual(got.metadata, { a: "1", b: "2" });
    assert.equal(got.owner, "tester", "the local user name by default");
    await Deno.writeTextFile(yaml, "command: true\nbogus: 1\n");
    const bad = await cli("submit", "--config", yaml);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /key "bogus" is unknown/);
  });

  await t.step(
    "--process-type pty runs on a terminal; an invalid type is a usage error",
    async () => {
      const pty = await cli(
        "submit",
        "--process-type",
        "pty",
        "--follow",
        "--",
        "sh",
        "-c",
        "test -t 1",
      );
      assert.equal(pty.code, 0, pty.stderr);
      const pipe = await cli("submit", "--follow", "--", "sh", "-c", "test -t 1");
      assert.equal(pipe.code, 1);
      const bad = await cli("submit", "--process-type", "tty", "--", "true");
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--process-type.*Allowed choices are pipe, pty/);
    },
  );

  await t.step("every reserved exit code", async () => {
    const timedOut = await cli("submit", "--wait", "--timeout", "1s", "--", "sleep", "10");
    assert.equal(timedOut.code, 124, timedOut.stderr);
    const notFound = await cli("submit", "--wait", "--", "airunner-no-such-command");
    assert.equal(notFound.code, 127);
    const cannotRun = await cli("submit", "--wait", "--", "/etc/passwd");
    assert.equal(cannotRun.code, 126);
    const unreachable = await runAirunner(["submit", "--", "true"], {
      env: { AIRUNNER_SERVER: `http://127.0.0.1:${freePort()}` },
    });
    assert.equal(unreachable.code, 125);
    const id = await submit("--", "sleep", "30");
    const waiting = cli("submit", "--wait", "--", "true"); // unrelated, keeps the CLI busy
    const follower = cli("logs", "-f", id);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal((await cli("cancel", id)).code, 0);
    assert.equal((await follower).code, 130);
    assert.equal((await waiting).code, 0);
  });

  await t.step("--json shapes are pinned", async () => {
    const plain = JSON.parse((await cli("submit", "--json", "--", "true")).stdout);
    assert.match(plain.id, UUID);
    await assertSnapshot("json-submit.json", JSON.stringify(shapeOf(plain), null, 2) + "\n");
    const waited = await cli("submit", "--json", "--wait", "--", "sh", "-c", "exit 3");
    assert.equal(waited.code, 3);
    const outcome = JSON.parse(waited.stdout);
    assert.equal(outcome.state, "failed");
    assert.equal(outcome.exitCode, 3);
    await assertSnapshot("json-submit-wait.json", JSON.stringify(shapeOf(outcome), null, 2) + "\n");
    const followed = await cli("submit", "--json", "--follow", "--", "echo", "to stderr");
    assert.equal(followed.stderr.includes("to stderr"), true, "output goes to stderr with --json");
    JSON.parse(followed.stdout); // stdout holds the JSON alone
    const list = JSON.parse((await cli("list", "--json", "--page-size", "1")).stdout);
    await assertSnapshot("json-list.json", JSON.stringify(shapeOf(list), null, 2) + "\n");
    const get = JSON.parse((await cli("get", plain.id, "--json")).stdout);
    await assertSnapshot("json-get.json", JSON.stringify(shapeOf(get), null, 2) + "\n");
  });

  await t.step(
    "logs: byte for byte, stdout and stderr apart; --from-sequence and --since",
    async () => {
      const bytes = crypto.getRandomValues(new Uint8Array(50_000));
      const file = `${dataDir}/random.bin`;
      await Deno.writeFile(file, bytes);
      const id = await submitAndWait("--", "sh", "-c", `cat ${file}; echo err >&2`);
      const logs = airunnerInvocation(["logs", id]);
      const out = await new Deno.Command(logs.command, {
        args: logs.args,
        env: env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.deepEqual(out.stdout, bytes);
      assert.equal(new TextDecoder().decode(out.stderr), "err\n");
      const later = await cli("logs", id, "--from-sequence", "99999");
      assert.equal(later.stdout, "");
      const recent = await cli("logs", id, "--since", "1h");
      assert.equal(recent.stderr, "err\n");
    },
  );

  await t.step("monitor: plain lines off a terminal, filters, playback", async () => {
    const id = await submitAndWait("--", "sh", "-c", "echo one; sleep 0.6; echo two; exit 2");
    const plain = await cli("monitor", id);
    assert.equal(plain.code, 2);
    assert.match(
      plain.stdout,
      /^\[1\] PROCESS_START pid=\d+\none\ntwo\n\[\d+\] PROCESS_END pid=\d+ exit_code=2/m,
    );
    const filtered = await cli("monitor", id, "--event-filter", "process_end");
    assert.match(filtered.stdout, /^\[\d+\] PROCESS_END/);
    assert.doesNotMatch(filtered.stdout, /one|PROCESS_START/);
    const future = await cli(
      "monitor",
      id,
      "--from-timestamp",
      new Date(Date.now() + 60_000).toISOString(),
    );
    assert.equal(future.stdout, "");
    const bad = await cli("monitor", id, "--event-filter", "nope");
    assert.equal(bad.code, 2);
    const started = Date.now();
    const played = await cli("monitor", id, "--playback");
    assert.ok(Date.now() - started >= 500, "replayed at its pace");
    assert.equal(played.stdout, plain.stdout);
  });

  await t.step("list: wide, pages", async () => {
    const wide = await cli("list", "--output", "wide", "--page-size", "2");
    assert.match(
      wide.stdout,
      /^ID +QUEUE +STATE +COMMAND +AGE +DURATION +EXIT +REPOSITORY +OWNER +ATTEMPT$/m,
    );
    assert.match(wide.stderr, /page 1 of \d+; next: --page 2/);
    const second = await cli("list", "--page", "2", "--page-size", "2");
    assert.equal(second.stdout.trim().split("\n").length, 3);
  });

  await t.step("completion scripts for bash, zsh and fish", async () => {
    for (const shell of ["bash", "zsh", "fish"]) {
      const r = await cli("completion", shell);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /submit/);
      assert.match(r.stdout, /--follow/);
    }
    const bash = await cli("completion", "bash");
    const check = await new Deno.Command("bash", {
      args: ["-n"],
      stdin: "piped",
      stderr: "piped",
    }).spawn();
    const writer = check.stdin.getWriter();
    await writer.write(new TextEncoder().encode(bash.stdout));
    await writer.close();
    assert.equal((await check.output()).code, 0, "bash parses it");
    assert.equal((await cli("completion", "tcsh")).code, 2);
  });

  await t.step("client flags: --timeout and --ca-cert are checked", async () => {
    const badTimeout = await cli("list", "--timeout", "soon");
    assert.equal(badTimeout.code, 2);
    const badCa = await cli("list", "--ca-cert", `${dataDir}/missing.pem`);
    assert.equal(badCa.code, 2);
    assert.match(badCa.stderr, /--ca-cert: cannot read/);
  });

  await dev.stop();
});

Deno.test("--token is sent as a bearer token", async () => {
  const seen: string[] = [];
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    seen.push(req.headers.get("authorization") ?? "");
    // A ListJobsResponse with last_page 1, in the CLI's JSON.
    return Response.json({ lastPage: 1 });
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  const r = await runAirunner(["list", "--server", url, "--token", "secret-token"]);
  assert.equal(r.code, 0, r.stderr);
  const viaEnv = await runAirunner(["list", "--server", url], {
    env: { AIRUNNER_TOKEN: "env-token" },
  });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  assert.deepEqual(seen, ["Bearer secret-token", "Bearer env-token"]);
});
