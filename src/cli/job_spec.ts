/**
 * A job's settings gathered from several sources and merged one way, for
 * `submit` (defaults, the `--config` job file, `--env-file`, the command
 * line) and for each line of `submit --batch` (the command line's defaults,
 * then the line): a later source's setting replaces an earlier one's, and
 * `environment`, `secretEnvironment` and `metadata` merge key by key.
 *
 * ```ts
 * const spec = mergeJobSpecs({ owner: "ada" }, { command: "make", environment: { CI: "1" } });
 * const params = jobParamsOf(spec, "--timeout");
 * ```
 *
 * @module
 */
import type { JobParams } from "../../gen/job/v1/job_pb.ts";
import { ProcessType } from "../../gen/job/v1/job_lite.ts";
import { checkTimeoutSeconds, type JobFile } from "./job_fields.ts";
import {
  validateBranch,
  validateCommit,
  validateRepository,
} from "../protocol/request_validation.ts";
import { usageChecked } from "./parse.ts";
import { parseRetries, parseRetryDelay, parseRetryOn, retryPolicyOf } from "./retry_flags.ts";
import { parsePriority, parseRunAt, parseStartDelay, startTimeOf } from "./start_flags.ts";
import { timestampOfMillis } from "../protocol/timestamp_ms.ts";

/** One source of a job's settings: the keys of a job file, each optional (undefined: not given). */
export type JobSpec = { readonly [K in keyof JobFile]?: JobFile[K] | undefined };

/** Merges `specs`, later ones winning (maps key by key); a setting that is undefined is not given. */
export function mergeJobSpecs(...specs: readonly JobSpec[]): JobSpec {
  const merged: Record<string, unknown> = {};
  for (const spec of specs) {
    for (const [key, value] of Object.entries(spec)) {
      if (value === undefined) continue;
      const isMap = key === "environment" || key === "secretEnvironment" || key === "metadata";
      merged[key] = isMap
        ? { ...(merged[key] as object | undefined), ...(value as object) }
        : value;
    }
  }
  return merged;
}

/**
 * The parameters of the job `spec` describes, what it leaves unset empty
 * (no arguments, no checkout, pipes, no timeout). Its timeout is checked
 * (a usage error naming `timeoutLabel`); its queue is not a parameter.
 */
export function jobParamsOf(
  spec: JobSpec & { readonly command: string },
  timeoutLabel: string,
): JobParams {
  // Every field, by hand: the protobuf runtime's create() would load into
  // every submit (see scripts/gen_lite.ts); the JobParams type keeps this
  // list whole when a field is added.
  return {
    $typeName: "job.v1.JobParams",
    command: spec.command,
    args: spec.args ?? [],
    environment: { ...spec.environment },
    secretEnvironment: { ...spec.secretEnvironment },
    metadata: { ...spec.metadata },
    owner: spec.owner ?? "",
    repository: spec.repository ?? "",
    branch: spec.branch ?? "",
    commit: spec.commit ?? "",
    workingDirectory: spec.workingDirectory ?? "",
    timeoutSeconds: checkTimeoutSeconds(spec.timeoutSeconds ?? 0, timeoutLabel),
    processType: spec.processType === "pty" ? ProcessType.PTY : ProcessType.PIPE,
    rerunOf: "",
    retry: retryPolicyOf(spec),
    delayMs: BigInt(spec.start?.delayMs ?? 0),
    ...(spec.start?.runAtMs === undefined ? {} : { runAt: timestampOfMillis(spec.start.runAtMs) }),
    priority: spec.priority ?? 0,
    after: [...(spec.after ?? [])],
    afterAny: [...(spec.afterAny ?? [])],
  };
}

/** The start and order flags of `submit` (and of `submit --batch`, every line's defaults). */
export interface StartFlags {
  readonly delay?: string | undefined;
  readonly at?: string | undefined;
  readonly priority?: string | undefined;
}

/** The start time and priority the flags give, each checked and named by its flag. */
export function startSpecOf(flags: StartFlags): Pick<JobSpec, "start" | "priority"> {
  return {
    start: startTimeOf(
      flags.delay === undefined ? undefined : parseStartDelay(flags.delay, "--delay"),
      flags.at === undefined ? undefined : parseRunAt(flags.at, "--at"),
      { delay: "--delay", at: "--at" },
    ),
    priority: flags.priority === undefined
      ? undefined
      : parsePriority(flags.priority, "--priority"),
  };
}

/** The retry flags of `submit` (and of `submit --batch`, where they are every line's defaults). */
export interface RetryFlags {
  readonly retries?: string | undefined;
  readonly retryOn?: string | undefined;
  readonly retryDelay?: string | undefined;
  /** False for `--no-retry-on-timeout` (commander's negated flag). */
  readonly retryOnTimeout?: boolean | undefined;
}

/** The retry settings the flags give, each checked and named by its flag. */
export function retrySpecOf(
  flags: RetryFlags,
): Pick<JobSpec, "retries" | "retryOn" | "retryDelay" | "retryOnTimeout"> {
  return {
    retries: flags.retries === undefined ? undefined : parseRetries(flags.retries, "--retries"),
    retryOn: flags.retryOn === undefined ? undefined : parseRetryOn(flags.retryOn, "--retry-on"),
    retryDelay: flags.retryDelay === undefined
      ? undefined
      : parseRetryDelay(flags.retryDelay, "--retry-delay"),
    retryOnTimeout: flags.retryOnTimeout === false ? false : undefined,
  };
}

/**
 * REPOSITORY, `--branch` and `--commit`, checked by the server's own rules
 * and named as the user typed them (`--commit: must be a hex object id ...`).
 */
export function checkedCheckoutFlags(
  repository: string | undefined,
  opts: { branch?: string | undefined; commit?: string | undefined },
): { repository?: string; branch?: string; commit?: string } {
  return usageChecked(() => ({
    ...(repository === undefined
      ? {}
      : { repository: validateRepository(repository, "REPOSITORY") }),
    ...(opts.branch === undefined ? {} : { branch: validateBranch(opts.branch, "--branch") }),
    ...(opts.commit === undefined ? {} : { commit: validateCommit(opts.commit, "--commit") }),
  }));
}
