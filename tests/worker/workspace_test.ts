import assert from "node:assert/strict";
import { checkOut, CheckoutError, workingDirectoryIn } from "../../src/worker/workspace.ts";
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
