/**
 * How an airunner queue name appears in an environment variable name
 * (AIRUNNER_SQS_QUEUE_<NAME>). Kept apart from the SDK-using modules so the
 * CLI can use it without loading the AWS SDK.
 *
 * @module
 */

/**
 * The suffix of the AIRUNNER_SQS_QUEUE_<NAME> variable that configures
 * `queue`: upper case, "-" as "_" (queue "build-fast" is
 * AIRUNNER_SQS_QUEUE_BUILD_FAST).
 */
export function environmentKeyOf(queue: string): string {
  return queue.toUpperCase().replaceAll("-", "_");
}
