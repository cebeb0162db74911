/**
 * airunner's version, and what a release build stamps in: the commit it
 * was built from. `deno task compile` sets the stamp through a generated
 * entrypoint (see scripts/compile.ts); from source there is none.
 *
 * @module
 */

/** airunner's version. */
export const VERSION = "0.1.0";

let buildCommit = "";

/** Records the commit a release binary was built from (called by its entrypoint). */
export function stampBuild(commit: string): void {
  buildCommit = commit;
}

/** What `airunner --version` prints: `0.1.0`, or `0.1.0 (commit 1a2b3c4)` for a release build. */
export function versionText(): string {
  return buildCommit === "" ? VERSION : `${VERSION} (commit ${buildCommit})`;
}
