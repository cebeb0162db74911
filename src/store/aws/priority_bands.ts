/**
 * Priorities on SQS (pure). SQS has no priority within a queue, so the AWS
 * store keeps up to three SQS queues per airunner queue, one per band, and
 * receives from the highest band first:
 *
 * | band   | priorities | SQS queue             |
 * |--------|------------|-----------------------|
 * | high   | 1..100     | `<prefix><queue>-hi`  |
 * | normal | 0          | `<prefix><queue>`     |
 * | low    | -100..-1   | `<prefix><queue>-lo`  |
 *
 * A job's band follows from its priority, which never changes, so every
 * message of a job (its first, a retry's, a redrive's) goes to one queue.
 * Within a band SQS's order stands (best effort): priorities 5 and 50 are
 * one band. A deployment without the band queues serves priority 0 as
 * before; a job of another priority is refused, naming the queue to create.
 *
 * @module
 */

/** A priority band, highest first in {@link BANDS_HIGHEST_FIRST}. */
export type PriorityBand = "high" | "normal" | "low";

/** The order a dequeue receives in. */
export const BANDS_HIGHEST_FIRST: readonly PriorityBand[] = ["high", "normal", "low"];

/** The band of `priority`. */
export function bandOf(priority: number): PriorityBand {
  return priority > 0 ? "high" : priority < 0 ? "low" : "normal";
}

/** The airunner-side name of `queue`'s SQS queue for `band` (the prefix comes on top). */
export function bandQueueName(queue: string, band: PriorityBand): string {
  return band === "normal" ? queue : `${queue}-${band === "high" ? "hi" : "lo"}`;
}

/** Every SQS queue (unprefixed names) that `queue` has with bands. */
export function bandQueueNames(queue: string): string[] {
  return BANDS_HIGHEST_FIRST.map((band) => bandQueueName(queue, band));
}

/**
 * Why `queue` cannot be an airunner queue on SQS, or undefined: a name
 * ending in -hi, -lo or -dlq (or _hi, _lo, _dlq, which name the same
 * AIRUNNER_SQS_QUEUE_* variable) is another queue's band or dead-letter
 * queue, and sharing an SQS queue would hand one queue's jobs to the other.
 */
export function reservedQueueNameProblem(queue: string): string | undefined {
  return /[-_](hi|lo|dlq)$/i.test(queue)
    ? "ends in -hi, -lo or -dlq, which the AWS store keeps for priority bands and dead-letter queues"
    : undefined;
}
