/**
 * `worker --run-as USER` (issue 18, hole 9): a worker started as root runs
 * each job as USER, which can write in its own workspace and cannot read
 * the worker's environment (where its token is). Real server and worker
 * processes, and a throwaway system user made for the test (the tests run
 * as root here; elsewhere they are skipped).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { EventType } from "../../gen/job/v1/job_pb.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import {
  freePort,
  runAirunner,
  startAirunner,
  startServerProcess,
  waitForHealth,
} from "../support/airunner_process.ts";
import { makeTestRepo } from "../support/git_repo.ts";

async function whoAmI(): Promise<string> {
  const out = await new Deno.Command("id", { args: ["-u"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

const CAN_RUN = Deno.build.os === "linux" && await whoAmI() === "0";

/**
 * Makes a system user without a home, member of a supplementary group of
 * its own as well, for `fn`; removes both afterwards.
 */
async function withThrowawayUser(fn: (name: string, group: string) => Promise<void>) {
  const name = `airunner-t${crypto.randomUUID().slice(0, 8)}`;
  const group = `${name}-g`;
  const run = async (command: string, args: string[]) => {
    const out = await new Deno.Command(command, { args, stderr: "piped" }).output();
    assert.ok(out.success, `${command}: ${new TextDecoder().decode(out.stderr)}`);
  };
  await run("groupadd", ["--system", group]);
  try {
    await run("useradd", [
      "--system",
      "--no-create-home",
      "--shell",
      "/usr/sbin/nologin",
      "--groups",
      group,
      name,
    ]);
    try {
      await fn(name, group);
    } finally {
      await new Deno.Command("userdel", { args: [name] }).output();
    }
  } finally {
    await new Deno.Command("groupdel", { args: [group] }).output();
  }
}

/**
 * The worker's environment for git run as the job's user on repositories
 * root made: PATH, and a system config trusting them (git refuses another
 * owner's repository otherwise, as an admin's /etc/gitconfig would allow).
 */
async function trustingGit(dir: string): Promise<Record<string, string>> {
  const config = join(dir, "gitconfig");
  await Deno.writeTextFile(config, "[safe]\n\tdirectory = *\n");
  await Deno.chmod(config, 0o644);
  return { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", GIT_CONFIG_SYSTEM: config };
}

async function withScratch(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "airunner-run-as-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The job's whole output (stdout and stderr), once it has ended. */
async function jobOutput(url: string, jobId: string): Promise<string> {
  const clients = createAirunnerClients({ serverUrl: url });
  const decoder = new TextDecoder();
  let text = "";
  for await (
    const { event } of clients.events.streamJobEvents(
      { jobId },
      { signal: AbortSignal.timeout(30_000) },
    )
  ) {
    if (event?.eventData.case === "outputBatch") {
      for (const item of event.eventData.value.outputs) text += decoder.decode(item.output);
    }
    if (event?.eventType === EventType.PROCESS_ERROR && event.eventData.case === "processError") {
      text += `[process error] ${event.eventData.value.errorMessage}\n`;
    }
  }
  return text;
}

Deno.test({
  name:
    "worker --run-as: jobs run as the user, write in their workspace, and cannot read the worker's environment",
  ignore: !CAN_RUN,
  fn: () =>
    withThrowawayUser((user, group) =>
      withScratch(async (dir) => {
        const port = freePort();
        const url = `http://127.0.0.1:${port}`;
        await using srv = startServerProcess(join(dir, "data"), port);
        await waitForHealth(url);
        // The user must reach the workspace root: the scratch dir is 0700 as made.
        await Deno.chmod(dir, 0o755);
        const workspaces = join(dir, "workspaces");
        const secret = `worker-secret-${crypto.randomUUID()}`;
        await using worker = startAirunner(
          ["worker", "--server", url, "--workspace-root", workspaces, "--run-as", user],
          { env: { AIRUNNER_TOKEN: secret, ...(await trustingGit(dir)) } },
        );
        const workerPid = worker.child.pid;
        const script = [
          `echo "uid=$(id -u) name=$(id -un)"`,
          `echo "groups=$(id -Gn)"`,
          `echo "home=$HOME user=$USER logname=$LOGNAME pwd=$(pwd)"`,
          `cat /proc/$PPID/environ > /dev/null 2>&1 && echo "PPID environ READ" || echo "PPID environ refused"`,
          `cat /proc/${workerPid}/environ > /dev/null 2>&1 && echo "worker environ READ" || echo "worker environ refused"`,
          `ls ${workspaces}/.running > /dev/null 2>&1 && echo "state dir READ" || echo "state dir refused"`,
          `echo written > note && cat note`,
        ].join("; ");
        const submitted = await runAirunner(["submit", "--server", url, "--", "sh", "-c", script]);
        assert.equal(submitted.code, 0, submitted.stderr);
        const out = await jobOutput(url, submitted.stdout.trim());
        const uid = new TextDecoder().decode(
          (await new Deno.Command("id", { args: ["-u", user], stdout: "piped" }).output()).stdout,
        ).trim();
        assert.match(out, new RegExp(`^uid=${uid} name=${user}$`, "m"));
        assert.match(
          out,
          new RegExp(`^home=(${workspaces}/\\S+) user=${user} logname=${user} pwd=\\1$`, "m"),
        );
        assert.match(out, new RegExp(`^groups=.*\\b${group}\\b`, "m"));
        assert.match(out, /^PPID environ refused$/m);
        assert.match(out, /^worker environ refused$/m);
        assert.match(out, /^state dir refused$/m);
        assert.match(out, /^written$/m);
        assert.doesNotMatch(out, new RegExp(secret));
        if (Deno.env.get("AIRUNNER_TEST_VERBOSE") === "1") console.log(out);

        // A pty job runs through script(1), as the user too.
        const pty = await runAirunner([
          "submit",
          "--server",
          url,
          "--process-type",
          "pty",
          "--",
          "sh",
          "-c",
          `echo "pty as $(id -un)"; [ -t 0 ] && echo "on a terminal"`,
        ]);
        assert.equal(pty.code, 0, pty.stderr);
        const ptyOut = await jobOutput(url, pty.stdout.trim());
        assert.match(ptyOut, new RegExp(`^pty as ${user}\r?$`, "m"));
        assert.match(ptyOut, /^on a terminal\r?$/m);

        // A repository job: the checkout is the user's, readable and writable.
        const repo = await makeTestRepo();
        try {
          await Deno.chmod(repo.url.slice("file://".length), 0o755); // git clones it as the user
          const withRepo = await runAirunner([
            "submit",
            "--server",
            url,
            "--branch",
            "feature",
            repo.url,
            "--",
            "sh",
            "-c",
            `cat VERSION; echo changed > VERSION && git status --short && echo "home=$HOME" && id -un`,
          ]);
          assert.equal(withRepo.code, 0, withRepo.stderr);
          const repoOut = await jobOutput(url, withRepo.stdout.trim());
          assert.match(repoOut, /^feature$/m);
          assert.match(repoOut, /^ M VERSION$/m);
          assert.match(repoOut, new RegExp(`^${user}$`, "m"));
        } finally {
          await repo.remove();
        }
        const stopped = await worker.stop();
        assert.match(stopped.stderr, new RegExp(`jobs run as ${user} \\(uid ${uid}\\)`));
        await srv.stop();
      })
    ),
});

Deno.test({
  name:
    "worker --run-as refuses to start for an unknown user, and a root worker without it warns once",
  ignore: !CAN_RUN,
  fn: async () => {
    const unknown = await runAirunner([
      "worker",
      "--server",
      "http://127.0.0.1:9",
      "--run-as",
      "no-such-user-airunner",
    ]);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(
      unknown.stderr,
      /--run-as no-such-user-airunner: no such user "no-such-user-airunner"/,
    );

    await withThrowawayUser((user) =>
      withScratch(async (dir) => {
        // Made 0700: the user cannot enter it, so not the workspace root in it either.
        const closed = await runAirunner([
          "worker",
          "--server",
          "http://127.0.0.1:9",
          "--workspace-root",
          join(dir, "workspaces"),
          "--run-as",
          user,
        ]);
        assert.equal(closed.code, 2, closed.stderr);
        assert.match(
          closed.stderr,
          new RegExp(`--run-as ${user}: ${user} cannot reach the workspace root ${dir}/workspaces`),
        );
      })
    );

    await withScratch(async (dir) => {
      const port = freePort();
      await using worker = startAirunner([
        "worker",
        "--server",
        `http://127.0.0.1:${port}`,
        "--workspace-root",
        join(dir, "workspaces"),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const { stderr } = await worker.stop();
      const warnings = stderr.split("\n").filter((l) => l.includes("jobs run as root"));
      assert.equal(warnings.length, 2, stderr); // the stderr line and the log line
      assert.ok(warnings.some((l) => l.startsWith("airunner: warning: jobs run as root")));
    });
  },
});

Deno.test({
  name:
    "worker --run-as: git runs as the user, so a repository only root can read fails its checkout, and a local clone shares no files with its source",
  ignore: !CAN_RUN,
  fn: () =>
    withThrowawayUser((user) =>
      withScratch(async (dir) => {
        const port = freePort();
        const url = `http://127.0.0.1:${port}`;
        await using srv = startServerProcess(join(dir, "data"), port);
        await waitForHealth(url);
        await Deno.chmod(dir, 0o755);
        await using worker = startAirunner(
          [
            "worker",
            "--server",
            url,
            "--workspace-root",
            join(dir, "workspaces"),
            "--run-as",
            user,
          ],
          { env: await trustingGit(dir) },
        );
        const repo = await makeTestRepo();
        const source = repo.url.slice("file://".length); // a local path: git would hard-link
        try {
          const submit = (...args: string[]) =>
            runAirunner(["submit", "--server", url, "--follow", source, "--", ...args]);
          // Made 0700 and root's: the worker could read it, the user cannot.
          const closed = await submit("cat", "VERSION");
          assert.equal(closed.code, 126, "the checkout failed, so the job did not run");
          assert.match(closed.stderr, /git clone failed: /);
          assert.equal(closed.stdout, "");

          await Deno.chmod(source, 0o755);
          const objects = (dir: string) =>
            [...walkFiles(join(dir, ".git", "objects"))].map((path) => Deno.statSync(path));
          const before = objects(source);
          assert.ok(before.length > 0);
          const open = await submit(
            "sh",
            "-c",
            `cat VERSION; stat -c '%U' . .git VERSION; find .git/objects -type f -exec stat -c '%h %U' {} +`,
          );
          assert.equal(open.code, 0, open.stderr);
          const lines = open.stdout.trim().split("\n");
          assert.equal(lines[0], "two");
          assert.deepEqual(lines.slice(1, 4), [user, user, user], "the checkout is the user's");
          const copied = lines.slice(4);
          assert.ok(copied.length > 0, open.stdout);
          for (const line of copied) {
            assert.equal(line, `1 ${user}`, "object files are the user's own, not hard links");
          }
          for (const info of objects(source)) {
            assert.equal(info.uid, 0, "the source's objects are still root's");
            assert.equal(info.nlink, 1, "and linked nowhere");
          }
        } finally {
          await repo.remove();
        }
        await worker.stop();
        await srv.stop();
      })
    ),
});

function* walkFiles(dir: string): Generator<string> {
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walkFiles(path);
    else if (entry.isFile) yield path;
  }
}
