/**
 * What an attempt's end means, decided without processes: from why the
 * worker stopped the command (if it did), whether the lease was lost, and
 * how the command exited, the result the job is completed with, or that it
 * must be handed back or left to the attempt that holds it now.
 *
 * @module
 */

/** Exit code reported for a job stopped by its timeout (as `timeout(1)` does). */
export const TIMEOUT_EXIT_CODE = 124;

/** Why the worker stopped a running command. */
export type StopReason = "timeout" | "lease_lost" | "shutdown" | "publish_failed" | "cancelled";

/** How a command's process ended. */
export interface CommandExit {
  /** The exit code; 128 + N when killed by signal N. */
  readonly exitCode: number;
  /** The signal that killed it, if any. */
  readonly signal: string | null;
}

/** The facts of a command's end. */
export interface AttemptEnd {
  /** The first reason the worker stopped the command (undefined: it ended by itself). */
  readonly stopReason: StopReason | undefined;
  /** Whether the lease was lost (even if the command ended first). */
  readonly leaseLost: boolean;
  readonly exit: CommandExit;
  /** The job's timeout (for the message of a timed-out job). */
  readonly timeoutSeconds: number;
  /** Why the server refused the job's events, when that stopped the command. */
  readonly publishFailure: string;
}

/** What the result of a job is made of (times and the job id aside). */
export interface ResultFields {
  readonly success: boolean;
  readonly exitCode: number;
  /** The job's timeout stopped it. */
  readonly timedOut: boolean;
  readonly errorMessage: string;
}

/** What to do with an attempt that ended. */
export type AttemptVerdict =
  /** A newer attempt holds the job: report nothing. */
  | { readonly kind: "lease_lost" }
  /** The worker is stopping: hand the job back to the queue. */
  | { readonly kind: "hand_back" }
  /** Complete the job with this result. */
  | { readonly kind: "complete"; readonly result: ResultFields };

/** The `outcome` label of the job-duration metric. */
export type DurationOutcome =
  | "lost"
  | "timed_out"
  | "cancelled"
  | "handed_back"
  | "succeeded"
  | "failed";

/** The duration metric's label for `end`. */
export function durationOutcome(end: AttemptEnd): DurationOutcome {
  if (end.stopReason === "lease_lost" || end.leaseLost) return "lost";
  switch (end.stopReason) {
    case "timeout":
      return "timed_out";
    case "cancelled":
      return "cancelled";
    case "shutdown":
      return "handed_back";
    default:
      return end.exit.exitCode === 0 ? "succeeded" : "failed";
  }
}

/**
 * What `end` means: a lost lease reports nothing, a shutdown hands back, and
 * anything else completes the job; a timeout with {@link TIMEOUT_EXIT_CODE},
 * otherwise with the command's own exit code, and a message that says why.
 */
export function attemptVerdict(end: AttemptEnd): AttemptVerdict {
  if (end.stopReason === "lease_lost" || end.leaseLost) return { kind: "lease_lost" };
  if (end.stopReason === "shutdown") return { kind: "hand_back" };
  const timedOut = end.stopReason === "timeout";
  const exitCode = timedOut ? TIMEOUT_EXIT_CODE : end.exit.exitCode;
  return {
    kind: "complete",
    result: {
      success: exitCode === 0,
      exitCode,
      // The server's retry policy reads this, not the exit code (124 is also a command's own).
      timedOut,
      errorMessage: timedOut
        ? `timed out after ${end.timeoutSeconds} s`
        : end.stopReason === "cancelled"
        ? "cancelled; the command was stopped"
        : end.stopReason === "publish_failed"
        ? `the server refused the job's events: ${end.publishFailure}`
        : exitCode === 0
        ? ""
        : end.exit.signal !== null
        ? `killed by ${end.exit.signal}`
        : `exited with code ${exitCode}`,
    },
  };
}

/**
 * The result of a job whose events the server refused (`reason`): failed,
 * whatever the command said, keeping a failing exit code (a 0 becomes 1).
 */
export function withRefusedEvents<R extends ResultFields>(result: R, reason: string): R {
  return {
    ...result,
    success: false,
    exitCode: result.exitCode === 0 ? 1 : result.exitCode,
    errorMessage: `the server refused the job's events: ${reason}`,
  };
}
