/**
 * The service limits and timings the AWS store works within, shared by its
 * operations.
 *
 * @module
 */
import type { BackoffPolicy } from "../../retry.ts";

/** Largest event stored: DynamoDB items are at most 400 KB; the rest of the item fits in the margin. */
export const AWS_MAX_EVENT_BYTES = 350 * 1024;
/** SQS's longest visibility timeout, and so the longest lease one receive gives. */
export const SQS_MAX_VISIBILITY_SECONDS = 43_200;
/** Default life of events (and of finished jobs) before DynamoDB's TTL removes them. */
export const DEFAULT_EVENTS_TTL_MS = 30 * 24 * 3600 * 1000;
/** A message for an unknown job younger than this may belong to an enqueue still writing its job. */
export const YOUNG_MESSAGE_MS = 60_000;
/** SQS's most entries per SendMessageBatch / DeleteMessageBatch. */
export const SQS_BATCH_MAX = 10;
/** Items of a batch call worked on at once (each is a few SDK calls). */
export const BATCH_CONCURRENCY = 8;
/**
 * Retries of the entries a batch call left undone (SQS `Failed` entries that
 * may succeed later, DynamoDB `UnprocessedItems`), with exponential backoff
 * from BATCH_RETRY_BASE_MS up to BATCH_RETRY_MAX_MS. All of them together
 * take a few seconds, far below YOUNG_MESSAGE_MS: a message sent for a job
 * whose item is still being retried must not be taken for an orphan.
 */
export const SQS_BATCH_RETRIES = 3;
export const DYNAMODB_BATCH_RETRIES = 8;
export const BATCH_RETRY_BASE_MS = 25;
export const BATCH_RETRY_MAX_MS = 1_000;

/** The backoff between those retries: 12–25 ms, doubling, then 0.5–1 s (see backoffDelayMs). */
export const BATCH_BACKOFF: BackoffPolicy = {
  initialMs: BATCH_RETRY_BASE_MS,
  maxMs: BATCH_RETRY_MAX_MS,
  multiplier: 2,
};
