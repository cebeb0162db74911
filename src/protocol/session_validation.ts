/**
 * The checks of a worker session's messages (pure): what a session opens
 * with (its queues in the worker's order, lease length, heartbeat, name),
 * the credits it grants and how many operations one message carries. The
 * limits are session.ts's and limits.ts's.
 *
 * @module
 */
import type { SessionOpen, WorkerSessionRequest } from "../../gen/job/v1/job_pb.ts";
import { checkRange, InvalidArgumentError } from "./invalid_argument.ts";
import * as limits from "./limits.ts";
import {
  MAX_SESSION_CREDITS,
  MAX_SESSION_HEARTBEAT_MS,
  MAX_SESSION_OPERATIONS,
  MAX_SESSION_QUEUES,
} from "./session.ts";
import { validateQueueName, validateWorkerName, withinItem } from "./request_validation.ts";

/**
 * The queues (in the worker's order of preference) and lease length a worker
 * session opens with, with the contract's defaults. A session without
 * `queues` serves `queue` alone; with them, `queue` is empty or the first.
 */
export function validateSessionOpen(
  open: SessionOpen | undefined,
): {
  queues: readonly string[];
  visibilityTimeoutMs: number;
  workerHeartbeatMs: number;
  workerName: string;
} {
  if (open === undefined) {
    throw new InvalidArgumentError("open", "is required in the first message of a session");
  }
  return withinItem("open", () => {
    const seconds = open.visibilityTimeoutSeconds <= 0
      ? limits.DEFAULT_VISIBILITY_TIMEOUT_SECONDS
      : open.visibilityTimeoutSeconds;
    checkRange("visibility_timeout_seconds", seconds, 1, limits.MAX_VISIBILITY_TIMEOUT_SECONDS);
    checkRange("heartbeat_ms", open.heartbeatMs, 0, MAX_SESSION_HEARTBEAT_MS);
    return {
      queues: validateSessionQueues(open.queue, open.queues),
      visibilityTimeoutMs: seconds * 1000,
      workerHeartbeatMs: open.heartbeatMs,
      workerName: validateWorkerName(open.workerName),
    };
  });
}

/** SessionOpen's queue and queues as one list: each a valid name, none twice, at most MAX_SESSION_QUEUES. */
function validateSessionQueues(queue: string, queues: readonly string[]): string[] {
  if (queues.length === 0) return [validateQueueName(queue)];
  if (queues.length > MAX_SESSION_QUEUES) {
    throw new InvalidArgumentError(
      "queues",
      `has ${queues.length} queues, more than the limit of ${MAX_SESSION_QUEUES}`,
    );
  }
  queues.forEach((name, i) => {
    validateQueueName(name, `queues[${i}]`);
    const first = queues.indexOf(name);
    if (first < i) {
      throw new InvalidArgumentError(`queues[${i}]`, `repeats queues[${first}] ("${name}")`);
    }
  });
  if (queue !== "" && queue !== queues[0]) {
    throw new InvalidArgumentError(
      "queue",
      `is "${queue}", but must be empty or the first of queues ("${queues[0]}")`,
    );
  }
  return [...queues];
}

/**
 * Checks `credits` granted on a session that holds `heldJobs` already
 * (credits not yet used plus jobs leased and not yet sent).
 */
export function validateSessionCredits(credits: number, heldJobs: number): void {
  if (credits < 0) throw new InvalidArgumentError("credits", `is ${credits}, below 0`);
  const total = heldJobs + credits;
  if (total > MAX_SESSION_CREDITS) {
    throw new InvalidArgumentError(
      "credits",
      `would let the worker hold ${total} unsent jobs, more than the limit of ${MAX_SESSION_CREDITS}`,
    );
  }
}

/** Checks that one session message carries no more than MAX_SESSION_OPERATIONS operations. */
export function validateSessionOperationCount(
  req: Pick<WorkerSessionRequest, "events" | "leaseUpdates" | "completions">,
): void {
  const operations = req.events.length + req.leaseUpdates.length + req.completions.length;
  if (operations > MAX_SESSION_OPERATIONS) {
    throw new InvalidArgumentError(
      "events, lease_updates and completions",
      `together carry ${operations} operations, more than the limit of ${MAX_SESSION_OPERATIONS}`,
    );
  }
}
