/**
 * `--after ID[,ID...]` and `--after-any ID[,ID...]` (repeatable), and the
 * `after` and `afterAny` keys of job files and batch lines: the jobs a job
 * waits for (src/store/dependencies.ts has the rules). Each id is checked
 * here as the server checks it, so a typo is a usage error naming the flag;
 * whether the job exists is the server's to say.
 *
 * @module
 */
import { validateJobId } from "../protocol/request_validation.ts";
import { usageChecked, UsageError } from "./parse.ts";

/** The flags of `submit` that name dependencies (commander's repeatable lists). */
export interface DependencyFlags {
  readonly after?: readonly string[] | undefined;
  readonly afterAny?: readonly string[] | undefined;
}

/** The ids of `values` (each one id or a comma-separated list), checked, named `label`. */
export function parseJobIdList(values: readonly string[] | string, label: string): string[] {
  const words = (typeof values === "string" ? [values] : values)
    .flatMap((v) => v.split(","))
    .map((v) => v.trim());
  // An empty id is refused, never dropped: `--after "$build"` with an
  // empty $build (its submit failed) must not start the job at once.
  if (words.some((id) => id === "")) {
    throw new UsageError(
      `${label}: an empty job id (a variable that holds no id?); give ID[,ID...]`,
    );
  }
  return words.map((id) => usageChecked(() => validateJobId(id, label)));
}

/** The dependency part of a job spec from the flags (undefined where a flag was not given). */
export function dependencySpecOf(
  flags: DependencyFlags,
): { after?: string[] | undefined; afterAny?: string[] | undefined } {
  return {
    after: flags.after === undefined || flags.after.length === 0
      ? undefined
      : parseJobIdList(flags.after, "--after"),
    afterAny: flags.afterAny === undefined || flags.afterAny.length === 0
      ? undefined
      : parseJobIdList(flags.afterAny, "--after-any"),
  };
}

/** A job file's or batch line's `after` / `afterAny`: a list of ids, or one comma-separated string. */
export function jobIdsField(value: unknown, label: string): string[] {
  if (typeof value === "string") return parseJobIdList(value, label);
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
    return parseJobIdList(value as string[], label);
  }
  throw new UsageError(`${label} must be a job id, a comma-separated list of them, or a list`);
}
