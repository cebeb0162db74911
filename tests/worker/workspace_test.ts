import assert from "node:assert/strict";
import {
  checkOut,
  CheckoutError,
  gitEnvironment,
  workingDirectoryIn,
} from "../../src/worker/workspace.ts";
import { makeTestRepo } from "../support/git_repo.ts";

const env = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: "/nonexistent" };

async function withRoot(fn: (root: string) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "airunner-ws-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("checks out the default branch, a branch, or a commit, each in a fresh workspace", async () => {
  const repo = await makeTestRepo();
  await withRoot(async (root) => {
    const request = {
      root,
      name: "job-1",
      repository: repo.url,
      commit: "",
      branch: "",
      env,
      signal: new AbortController().signal,
    };
    const main = await checkOut(request, false);
    assert.equal(await Deno.readTextFile(`${main.dir}/VERSION`), "two\n");
    const feature = await checkOut({ ...request, branch: "feature" }, false);
    assert.equal(await Deno.readTextFile(`${feature.dir}/VERSION`), "feature\n");
    const old = await checkOut({ ...request, commit: repo.firstCommit }, false);
    assert.equal(await Deno.readTextFile(`${old.dir}/VERSION`), "one\n");
    assert.equal(new Set([main.dir, feature.dir, old.dir]).size, 3);
    for (const ws of [main, feature, old]) await ws.remove();
    assert.deepEqual([...Deno.readDirSync(root)], [], "workspaces are removed");
    const kept = await checkOut(request, true);
    await kept.remove();
    assert.ok(Deno.statSync(`${kept.dir}/VERSION`).isFile, "kept on request");
  });
  await repo.remove();
});

Deno.test("a checkout that fails says what git said and leaves nothing behind", async () => {
  await withRoot(async (root) => {
    await assert.rejects(
      checkOut({
        root,
        name: "job-2",
        repository: `file://${root}/no-such-repo`,
        commit: "",
        branch: "",
        env,
        signal: new AbortController().signal,
      }, false),
      (error: unknown) =>
        error instanceof CheckoutError &&
        /git clone failed: .*(does not exist|not a git repository|Could not read)/i
          .test(error.message),
    );
    const repo = await makeTestRepo();
    await assert.rejects(
      checkOut({
        root,
        name: "job-3",
        repository: repo.url,
        commit: "",
        branch: "no-such-branch",
        env,
        signal: new AbortController().signal,
      }, false),
      /no-such-branch/,
    );
    await repo.remove();
    assert.deepEqual([...Deno.readDirSync(root)], []);
  });
});

Deno.test("an abbreviated commit the server will not send alone is found in the full history", async () => {
  const repo = await makeTestRepo();
  await withRoot(async (root) => {
    const ws = await checkOut({
      root,
      name: "job-4",
      repository: repo.url,
      commit: repo.firstCommit.slice(0, 7),
      branch: "",
      env,
      signal: new AbortController().signal,
    }, false);
    assert.equal(await Deno.readTextFile(`${ws.dir}/VERSION`), "one\n");
    await ws.remove();
  });
  await repo.remove();
});

Deno.test("a commit, branch or repository that reads as a git option runs nothing and fails the checkout", async () => {
  const repo = await makeTestRepo();
  const scratch = await Deno.makeTempDir({ prefix: "airunner-pwned-" });
  const marker = `${scratch}/pwned`;
  // What a worker gets from a store entry written before enqueue refused these.
  const hostile = `--upload-pack=touch ${marker}; false`;
  const cases = [
    { commit: hostile, branch: "", repository: repo.url },
    { commit: `-u${`touch ${marker}; false`}`, branch: "", repository: repo.url },
    { commit: "", branch: hostile, repository: repo.url },
    { commit: "", branch: "", repository: hostile },
    { commit: repo.firstCommit, branch: "", repository: hostile },
  ];
  await withRoot(async (root) => {
    for (const [i, values] of cases.entries()) {
      await assert.rejects(
        checkOut(
          { root, name: `job-${i}`, ...values, env, signal: new AbortController().signal },
          false,
        ),
        CheckoutError,
        JSON.stringify(values),
      );
      assert.equal(
        await Deno.lstat(marker).then(() => true, () => false),
        false,
        `git ran the command of ${JSON.stringify(values)}`,
      );
    }
    assert.deepEqual([...Deno.readDirSync(root)], [], "failed checkouts leave nothing");
  });
  await Deno.remove(scratch, { recursive: true });
  await repo.remove();
});

Deno.test("a relative workspace root is refused before anything is made", async () => {
  const relative = `airunner-relative-root-${crypto.randomUUID()}`;
  await assert.rejects(
    checkOut({
      root: relative,
      name: "job-5",
      repository: "file:///nonexistent",
      commit: "",
      branch: "",
      env,
      signal: new AbortController().signal,
    }, false),
    (error: unknown) =>
      error instanceof CheckoutError && /not an absolute path/.test(error.message),
  );
  assert.equal(await Deno.lstat(relative).then(() => true, () => false), false);
});

Deno.test("git runs with the worker's environment, without its token, and never prompts", () => {
  assert.deepEqual(
    gitEnvironment({ PATH: "/bin", AIRUNNER_TOKEN: "secret", GIT_TERMINAL_PROMPT: "1" }),
    { PATH: "/bin", GIT_TERMINAL_PROMPT: "0" },
  );
});

Deno.test("working_directory is relative to the checkout and cannot leave it", () => {
  assert.equal(workingDirectoryIn("/ws/co", ""), "/ws/co");
  assert.equal(workingDirectoryIn("/ws/co", "sub/dir"), "/ws/co/sub/dir");
  assert.equal(workingDirectoryIn("/ws/co", "sub/../other"), "/ws/co/other");
  assert.throws(() => workingDirectoryIn("/ws/co", "../elsewhere"), /leads out of the checkout/);
  assert.throws(() => workingDirectoryIn("/ws/co", "sub/../../x"), /leads out of the checkout/);
  assert.throws(() => workingDirectoryIn("/ws/co", "/etc"), /must be relative/);
});

Deno.test("working_directory cannot leave the checkout through a symlink in the repository", async () => {
  const checkout = await Deno.makeTempDir({ prefix: "airunner-checkout-" });
  const outside = await Deno.makeTempDir({ prefix: "airunner-outside-" });
  try {
    await Deno.mkdir(`${checkout}/src`);
    await Deno.symlink(outside, `${checkout}/escape`);
    await Deno.symlink(`${checkout}/src`, `${checkout}/inner`);
    assert.throws(() => workingDirectoryIn(checkout, "escape"), /through a symlink/);
    assert.equal(workingDirectoryIn(checkout, "inner"), `${checkout}/inner`);
    assert.equal(workingDirectoryIn(checkout, "src"), `${checkout}/src`);
  } finally {
    await Deno.remove(checkout, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
