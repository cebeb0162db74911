/**
 * AWS SDK failures as store errors. The SDK retries throttling and
 * transient faults itself (exponential backoff with jitter, see
 * {@link SDK_MAX_ATTEMPTS}); what is still failing afterwards becomes
 * ThrottledError or BackendUnavailableError, both Unavailable to clients.
 *
 * @module
 */
import { BackendUnavailableError, StoreError, ThrottledError } from "../errors.ts";

/** Attempts the SDK makes per call before giving up (its standard retry mode). */
export const SDK_MAX_ATTEMPTS = 5;

/** Error names AWS uses for throttling. */
export const THROTTLING_ERRORS: ReadonlySet<string> = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "TooManyRequestsException",
  "AWS.SimpleQueueService.RequestThrottled",
]);

/** Whether a DynamoDB conditional write was refused because its condition did not hold. */
export function isConditionFailed(error: unknown): boolean {
  return errorName(error) === "ConditionalCheckFailedException";
}

/** Whether SQS says the queue does not exist. */
export function isQueueMissing(error: unknown): boolean {
  const name = errorName(error);
  return name === "QueueDoesNotExist" || name === "AWS.SimpleQueueService.NonExistentQueue";
}

/** Whether an SQS receipt handle was refused (expired, or the message is gone). */
export function isStaleReceipt(error: unknown): boolean {
  const name = errorName(error);
  return name === "ReceiptHandleIsInvalid" || name === "MessageNotInflight" ||
    name === "InvalidParameterValue" || name === "AWS.SimpleQueueService.MessageNotInflight";
}

/** What SQS reports about one entry of a batch call it did not carry out. */
export interface BatchEntryFailure {
  readonly Code?: string | undefined;
  readonly Message?: string | undefined;
  readonly SenderFault?: boolean | undefined;
}

/**
 * Whether a failed entry of an SQS batch call may succeed when sent again:
 * SQS's own faults and throttling may, a fault of the request itself will not.
 */
export function isRetryableBatchEntry(entry: BatchEntryFailure): boolean {
  return entry.SenderFault !== true || THROTTLING_ERRORS.has(entry.Code ?? "");
}

/**
 * A failed batch entry as an error named by its code, so that
 * {@link asStoreError} and {@link isStaleReceipt} classify it like the
 * single call's exception.
 */
export function batchEntryError(entry: BatchEntryFailure): Error {
  const error = new Error(entry.Message ?? "the entry was not carried out");
  error.name = entry.Code ?? "Error";
  return error;
}

/** `error` as the store error to throw: store errors pass, AWS faults are translated. */
export function asStoreError(operation: string, error: unknown): Error {
  if (error instanceof StoreError) return error;
  const name = errorName(error);
  if (THROTTLING_ERRORS.has(name)) return new ThrottledError(operation);
  const message = error instanceof Error ? error.message : String(error);
  return new BackendUnavailableError(
    operation,
    `${name === "" || name === "Error" ? message : `${name}: ${message}`}${hintFor(message)}`,
  );
}

/** What to do about the SDK's configuration errors. */
function hintFor(message: string): string {
  if (/region is missing/i.test(message)) return " (set AWS_REGION or --region)";
  if (/could not load credentials/i.test(message)) {
    return " (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where an instance role applies)";
  }
  return "";
}

function errorName(error: unknown): string {
  if (typeof error !== "object" || error === null) return "";
  const named = error as { name?: unknown; Code?: unknown };
  if (typeof named.Code === "string") return named.Code;
  return typeof named.name === "string" ? named.name : "";
}
