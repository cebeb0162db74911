/**
 * Local git repositories made by tests, reached through file:// URLs.
 *
 * @module
 */

/** Runs git in `cwd` with a fixed identity and no system config; its stdout, trimmed. */
export async function git(cwd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", {
    args: ["-c", "user.email=test@airunner.invalid", "-c", "user.name=test", ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { GIT_CONFIG_NOSYSTEM: "1", HOME: cwd },
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

/** A repository with two commits on `main` and a branch `feature`. */
export interface TestRepo {
  readonly url: string;
  /** The first commit on main (VERSION=one). */
  readonly firstCommit: string;
  /** The commit at the tip of `feature` (VERSION=feature, FEATURE=yes). */
  readonly featureCommit: string;
  remove(): Promise<void>;
}

/**
 * Makes a repository: main has VERSION "one" then "two" (and sub/dir/here),
 * branch feature has VERSION "feature" and a file FEATURE.
 */
export async function makeTestRepo(): Promise<TestRepo> {
  const dir = await Deno.makeTempDir({ prefix: "airunner-repo-" });
  await git(dir, "init", "--quiet", "--initial-branch=main");
  await Deno.writeTextFile(`${dir}/VERSION`, "one\n");
  await git(dir, "add", "VERSION");
  await git(dir, "commit", "--quiet", "-m", "one");
  const firstCommit = await git(dir, "rev-parse", "HEAD");
  await Deno.mkdir(`${dir}/sub/dir`, { recursive: true });
  await Deno.writeTextFile(`${dir}/sub/dir/here`, "here\n");
  await Deno.writeTextFile(`${dir}/VERSION`, "two\n");
  await git(dir, "add", "VERSION", "sub");
  await git(dir, "commit", "--quiet", "-m", "two");
  await git(dir, "checkout", "--quiet", "-b", "feature");
  await Deno.writeTextFile(`${dir}/VERSION`, "feature\n");
  await Deno.writeTextFile(`${dir}/FEATURE`, "yes\n");
  await git(dir, "add", "VERSION", "FEATURE");
  await git(dir, "commit", "--quiet", "-m", "feature");
  const featureCommit = await git(dir, "rev-parse", "HEAD");
  await git(dir, "checkout", "--quiet", "main");
  return {
    url: `file://${dir}`,
    firstCommit,
    featureCommit,
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}
