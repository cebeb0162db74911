/**
 * `--default-retries N` and `--default-retry-delay 5s..10m` of `server`,
 * `dev` and `orchestrator`: the retry policy every job gets that is
 * enqueued without one of its own (a job's own policy wins, even
 * `--retries 0`). They apply to every queue the server serves.
 *
 * @module
 */
import { Option } from "@commander-js/extra-typings";
import type { RetryPolicy } from "../../gen/job/v1/job_pb.ts";
import { parseRetries, parseRetryDelay, retryPolicyOf } from "./retry_flags.ts";

const DEFAULT_NAMES = {
  retries: "--default-retries",
  retryOn: "--default-retry-on",
  retryDelay: "--default-retry-delay",
  retryOnTimeout: "--default-retry-on-timeout",
} as const;

/** The two options, for a command that serves the API. */
export function defaultRetryOptions() {
  return [
    new Option(
      "--default-retries <n>",
      "retries of a job enqueued without a retry policy (0..100; default 0)",
    ).env("AIRUNNER_DEFAULT_RETRIES"),
    new Option(
      "--default-retry-delay <delay>",
      "first wait..longest wait of those retries (default 1s..5m)",
    ).env("AIRUNNER_DEFAULT_RETRY_DELAY"),
  ] as const;
}

/** The default policy the options ask for, or undefined (jobs without a policy do not retry). */
export function defaultRetryPolicyOf(opts: {
  readonly defaultRetries?: string | undefined;
  readonly defaultRetryDelay?: string | undefined;
}): RetryPolicy | undefined {
  return retryPolicyOf({
    retries: opts.defaultRetries === undefined
      ? undefined
      : parseRetries(opts.defaultRetries, "--default-retries"),
    retryDelay: opts.defaultRetryDelay === undefined
      ? undefined
      : parseRetryDelay(opts.defaultRetryDelay, "--default-retry-delay"),
  }, DEFAULT_NAMES);
}
