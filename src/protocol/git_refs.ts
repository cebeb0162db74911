/**
 * What git accepts as a branch name and as an object id, as pure checks, so
 * a job's `branch` and `commit` are refused at enqueue when git would refuse
 * them, and a value that git would read as an option never reaches a worker.
 *
 * The branch rules are those of `git check-ref-format --branch`: the rules
 * of git-check-ref-format(1) for `refs/heads/<name>`, plus git's refusal of
 * a branch that begins with `-` or is `HEAD`. Names git allows stay allowed,
 * non-ASCII included.
 *
 * @module
 */

/** Shortest abbreviated object id git resolves. */
export const MIN_OBJECT_ID_HEX = 4;
/** A full SHA-256 object id; SHA-1 ids are 40. */
export const MAX_OBJECT_ID_HEX = 64;

const HEX_OBJECT_ID = new RegExp(`^[0-9a-fA-F]{${MIN_OBJECT_ID_HEX},${MAX_OBJECT_ID_HEX}}$`);

/**
 * Whether `value` is a hex object id (full or abbreviated).
 *
 * @example
 * isHexObjectId("1a2b3c"); // true
 * isHexObjectId("main"); // false
 */
export function isHexObjectId(value: string): boolean {
  return HEX_OBJECT_ID.test(value);
}

/**
 * Why git would refuse `name` as a branch name, or undefined when it is a
 * valid one. The problem is a phrase that reads after the field's name.
 *
 * @example
 * branchNameProblem("feature/login"); // undefined
 * branchNameProblem("--upload-pack=x"); // "must not begin with '-'"
 */
export function branchNameProblem(name: string): string | undefined {
  if (name.startsWith("-")) return "must not begin with '-'";
  if (name === "HEAD") return "must not be 'HEAD'";
  // deno-lint-ignore no-control-regex -- control characters are what this rule refuses
  if (/[\x00-\x1f\x7f]/.test(name)) return "must not contain control characters";
  const forbidden = [" ", "~", "^", ":", "?", "*", "[", "\\"].find((c) => name.includes(c));
  if (forbidden !== undefined) return `must not contain '${forbidden}'`;
  if (name.includes("..")) return "must not contain '..'";
  if (name.includes("@{")) return "must not contain '@{'";
  if (name.startsWith("/") || name.endsWith("/")) return "must not begin or end with '/'";
  if (name.includes("//")) return "must not contain '//'";
  if (name.endsWith(".")) return "must not end with '.'";
  for (const component of name.split("/")) {
    if (component.startsWith(".")) return "must not have a part that begins with '.'";
    if (component.endsWith(".lock")) return "must not have a part that ends with '.lock'";
  }
  return undefined;
}
