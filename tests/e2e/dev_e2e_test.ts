import assert from "node:assert/strict";
import {
  airunnerInvocation,
  runAirunner,
  startDev,
  WORKER_PROTOCOLS,
} from "../support/airunner_process.ts";

/** Starts `airunner submit --follow -- ...command` in the background, stdout piped. */
function spawnFollower(server: string, stderr: "piped" | "null", ...command: string[]) {
  const submit = airunnerInvocation(["submit", "--server", server, "--follow", "--", ...command]);
  return new Deno.Command(submit.command, {
    args: submit.args,
    stdout: "piped",
    stderr,
  }).spawn();
}

/** Runs `airunner submit --follow -- ...command` against `server`. */
function submitFollow(server: string, ...command: string[]) {
  return runAirunner(["submit", "--server", server, "--follow", "--", ...command]);
}

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`airunner dev + submit --follow: output streams live and the exit code passes through [${protocol}]`, async () => {
    await using dev = await startDev({ prefix: "airunner-dev-", protocol });
    const { server } = dev;

    const failing = await submitFollow(server, "sh", "-c", "echo out; echo err >&2; exit 3");
    assert.equal(failing.stdout, "out\n", "job stdout on stdout, nothing else");
    assert.match(failing.stderr, /^err$/m, "job stderr on stderr");
    assert.equal(failing.code, 3);

    const passing = await submitFollow(server, "sh", "-c", "exit 0");
    assert.equal(passing.code, 0, passing.stderr);

    const listed = await runAirunner(["list", "--server", server, "--json"]);
    assert.equal(listed.code, 0, listed.stderr);
    const jobs = JSON.parse(listed.stdout) as {
      state: string;
      exitCode: number | null;
      command: string;
    }[];
    assert.equal(jobs.length, 2);
    assert.deepEqual(
      jobs.map((j) => ({ state: j.state, exitCode: j.exitCode })),
      [{ state: "completed", exitCode: 0 }, { state: "failed", exitCode: 3 }],
    );
    assert.equal(jobs[1]!.command, "sh -c 'echo out; echo err >&2; exit 3'");

    const table = await runAirunner(["list", "--server", server, "--state", "failed"]);
    assert.match(table.stdout, /^ID\s+QUEUE\s+STATE\s+COMMAND\s+AGE\s+DURATION\s+EXIT$/m);
    assert.equal(table.stdout.trim().split("\n").length, 2, "header and the one failed job");

    const stopped = await dev.stop("SIGINT");
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(
      stopped.stderr,
      /airunner dev: server on http:\/\/127\.0\.0\.1:\d+.*airunner submit/,
    );
  });
}

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`submit prints only the job id; monitor follows it to its end [${protocol}]`, async () => {
    await using dev = await startDev({ prefix: "airunner-dev-", protocol });
    const { server } = dev;

    const submitted = await runAirunner([
      "submit",
      "--server",
      server,
      "--",
      "sh",
      "-c",
      "echo hi; exit 5",
    ]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = submitted.stdout.trim();
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

    const monitored = await runAirunner(["monitor", id, "--server", server]);
    assert.equal(monitored.code, 5);
    assert.match(monitored.stdout, /\[1\] PROCESS_START pid=\d+/);
    assert.match(monitored.stdout, /^hi$/m);
    assert.match(monitored.stdout, /PROCESS_END pid=\d+ exit_code=5/);

    const later = await runAirunner(["monitor", id, "--server", server, "--from-sequence", "3"]);
    assert.doesNotMatch(later.stdout, /PROCESS_START/, "--from-sequence skips earlier events");
    assert.match(later.stdout, /^\[3\] PROCESS_END pid=\d+ exit_code=5/m);
    assert.equal(later.code, 5);

    const unterminated = await submitFollow(server, "printf", "abc");
    assert.equal(unterminated.stdout, "abc", "submit --follow passes output through byte for byte");
    const partial = await runAirunner([
      "submit",
      "--server",
      server,
      "--",
      "printf",
      "abc",
    ]);
    const shown = await runAirunner(["monitor", partial.stdout.trim(), "--server", server]);
    assert.match(
      shown.stdout,
      /^abc\n\[3\] PROCESS_END/m,
      "a status line starts on a line of its own",
    );
    await dev.stop();
  });
}

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`submit --follow shows output while the job is still running [${protocol}]`, async () => {
    await using dev = await startDev({ prefix: "airunner-dev-", protocol });
    const { server } = dev;

    const follower = spawnFollower(server, "null", "sh", "-c", "echo first; sleep 3; echo second");
    const reader = follower.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const started = Date.now();
    let seen = "";
    while (!seen.includes("first\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    const firstAfterMs = Date.now() - started;
    assert.ok(
      firstAfterMs < 2500,
      `first line arrived after ${firstAfterMs} ms, before the job ended`,
    );
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assert.equal(seen, "first\nsecond\n");
    assert.equal((await follower.status).code, 0);
    await dev.stop();
  });
}

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`a failed job says why on stderr; the exit code still comes from the job [${protocol}]`, async () => {
    await using dev = await startDev({ prefix: "airunner-dev-", protocol });
    const { server } = dev;
    const missing = await submitFollow(server, "airunner-no-such-command");
    assert.equal(missing.code, 127);
    assert.equal(missing.stdout, "");
    assert.match(missing.stderr, /failed: command not found: airunner-no-such-command/);
    const timedOut = await runAirunner([
      "submit",
      "--server",
      server,
      "--follow",
      "--timeout",
      "1s",
      "--",
      "sleep",
      "30",
    ]);
    assert.equal(timedOut.code, 124);
    assert.match(timedOut.stderr, /failed: timed out after 1 s/);
    await dev.stop();
  });
}

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`Ctrl-C stops following but not the job; a closed pipe ends the follower at once [${protocol}]`, async () => {
    await using dev = await startDev({ prefix: "airunner-dev-", protocol });
    const { server } = dev;

    const follower = spawnFollower(server, "piped", "sh", "-c", "sleep 2; echo late");
    const stdout = new Response(follower.stdout).text();
    // Ctrl-C once the job is submitted and followed (not while airunner is still starting).
    const errors = follower.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let message = "";
    while (!message.includes("submitted to queue")) {
      const { done, value } = await errors.read();
      if (done) break;
      message += value;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    follower.kill("SIGINT");
    for (;;) {
      const { done, value } = await errors.read();
      if (done) break;
      message += value;
    }
    const status = await follower.status;
    assert.equal(status.code, 130);
    assert.match(
      message,
      /stopped following job (\S+); it keeps running \(follow it again: airunner logs -f \1\)/,
    );
    assert.equal(await stdout, "");
    const id = /stopped following job (\S+);/.exec(message)![1]!;
    const resumed = await runAirunner(["monitor", id, "--server", server]);
    assert.equal(resumed.code, 0, "the job ran to its end");
    assert.match(resumed.stdout, /^late$/m);

    // `airunner submit --follow ... | head -1`: the follower stops when its reader goes away.
    const piped = spawnFollower(server, "null", "seq", "1", "1000000");
    const reader = piped.stdout.getReader();
    await reader.read();
    await reader.cancel();
    const started = Date.now();
    const pipedStatus = await piped.status;
    assert.ok(Date.now() - started < 5_000, "exited soon after its reader went away");
    assert.equal(pipedStatus.code, 141);
    await dev.stop();
  });
}
