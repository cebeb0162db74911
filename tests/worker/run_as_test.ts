/**
 * Jobs as another user (run_as.ts, job_home.ts): who may, and what the
 * job's home and environment are.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { letThrough, withIdentity } from "../../src/worker/job_home.ts";
import { canSearch, prepareRunAs, RunAsError } from "../../src/worker/run_as.ts";

const IS_LINUX = Deno.build.os === "linux";

Deno.test("a worker that is not root cannot run jobs as another user, and says so", async () => {
  await assert.rejects(
    () => prepareRunAs("nobody", "/tmp/unused", 1000),
    (error: unknown) =>
      error instanceof RunAsError &&
      (IS_LINUX
        ? error.message ===
          "--run-as nobody: only a worker started as root can run jobs as another user (this one runs as uid 1000)"
        : /Linux only/.test(error.message)),
  );
});

Deno.test({
  name: "an unknown user, or a name that is an option, is refused by name",
  ignore: !IS_LINUX,
  fn: async () => {
    await assert.rejects(
      () => prepareRunAs("no-such-user-airunner", "/tmp/unused", 0),
      /--run-as no-such-user-airunner: no such user "no-such-user-airunner"/,
    );
    await assert.rejects(
      () => prepareRunAs("-u", "/tmp/unused", 0),
      /--run-as -u: not a user name/,
    );
  },
});

Deno.test("searching a directory: owner, group, then others' bits", () => {
  const user = { uid: 1000, groups: [1000, 27] };
  assert.equal(canSearch({ uid: 0, gid: 0, mode: 0o40711 }, user), true);
  assert.equal(canSearch({ uid: 0, gid: 0, mode: 0o40700 }, user), false);
  assert.equal(canSearch({ uid: 0, gid: 27, mode: 0o40710 }, user), true);
  assert.equal(canSearch({ uid: 1000, gid: 0, mode: 0o40700 }, user), true);
  // Owner bits decide for the owner, even when others may.
  assert.equal(canSearch({ uid: 1000, gid: 0, mode: 0o40077 }, user), false);
});

Deno.test("a job run as a user has HOME, USER and LOGNAME of it, unless it set them", () => {
  const env = withIdentity(
    { PATH: "/bin", HOME: "/root", USER: "root", LOGNAME: "mine" },
    { LOGNAME: "mine" },
    { name: "ci" },
    "/srv/ws/job-1",
  );
  assert.deepEqual(env, { PATH: "/bin", HOME: "/srv/ws/job-1", USER: "ci", LOGNAME: "mine" });
});

Deno.test({
  name:
    "the directories between the workspace root and a job's home let the user through, nothing more",
  ignore: !IS_LINUX,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "airunner-through-" });
    try {
      const area = join(root, "worker-0123456789abcdef");
      const home = join(area, "job-1-abc");
      await Deno.mkdir(home, { recursive: true, mode: 0o700 });
      await Deno.chmod(area, 0o700);
      await letThrough(root, home);
      assert.equal((await Deno.stat(area)).mode! & 0o777, 0o711);
      assert.equal(
        (await Deno.stat(home)).mode! & 0o777,
        0o700,
        "the home itself is the user's to keep",
      );
      assert.equal(
        (await Deno.stat(root)).mode! & 0o777,
        0o700,
        "the root is readied at start, not here",
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
