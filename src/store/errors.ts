/**
 * The closed set of errors every JobStore backend throws. Callers branch on
 * {@link StoreError.code} (or `instanceof`), never on message text; the server
 * maps each code to one Connect code at its edge.
 *
 * @module
 */

/** Machine-readable error codes of the store. */
export const StoreErrorCode = {
  /** No job has this id (or it has been deleted by retention). */
  JobNotFound: "job_not_found",
  /** The task token is malformed or its signature does not match. */
  InvalidTaskToken: "invalid_task_token",
  /** The token is genuine but its lease is over: another attempt holds the job, or it finished. */
  LeaseLost: "lease_lost",
  /** The job has finished (COMPLETED, FAILED or CANCELLED): nothing more can happen to it. */
  JobFinished: "job_finished",
  /** The request names a queue other than the leased job's queue. */
  QueueMismatch: "queue_mismatch",
  /** The request names a job other than the one the task token leases. */
  JobMismatch: "job_mismatch",
  /** An event is larger than the backend can store. */
  EventTooLarge: "event_too_large",
  /** An event is malformed (for example an output batch whose range does not match its items). */
  InvalidEvent: "invalid_event",
  /** A request_id was used before for a different job. */
  IdempotencyConflict: "idempotency_conflict",
  /** The backend is rate limiting and retries did not get through. */
  Throttled: "throttled",
  /** The store has been closed. */
  StoreClosed: "store_closed",
  /** The queue has no backing queue (an SQS queue that does not exist). */
  QueueNotFound: "queue_not_found",
  /** The backend (DynamoDB, SQS) cannot be reached or failed. */
  BackendUnavailable: "backend_unavailable",
  /** The store's disk refused a write (full, or failing): nothing was written; reads still work. */
  StoreFull: "store_full",
} as const;

/** One of {@link StoreErrorCode}'s values. */
export type StoreErrorCode = typeof StoreErrorCode[keyof typeof StoreErrorCode];

/** Base class of every error a JobStore throws on purpose. */
export abstract class StoreError extends Error {
  abstract readonly code: StoreErrorCode;
}

/** No job has the given id. */
export class JobNotFoundError extends StoreError {
  readonly code = StoreErrorCode.JobNotFound;
  constructor(readonly jobId: string) {
    super(`job ${jobId} not found`);
    this.name = "JobNotFoundError";
  }
}

/** The job has finished; it can no longer be cancelled. */
export class JobFinishedError extends StoreError {
  readonly code = StoreErrorCode.JobFinished;
  constructor(readonly jobId: string, state: string) {
    super(`job ${jobId} has already finished (${state})`);
    this.name = "JobFinishedError";
  }
}

/** The task token is malformed, truncated, tampered with or signed by another secret. */
export class InvalidTaskTokenError extends StoreError {
  readonly code = StoreErrorCode.InvalidTaskToken;
  constructor(reason: string) {
    super(`invalid task token: ${reason}`);
    this.name = "InvalidTaskTokenError";
  }
}

/** The task token's lease is over: a newer attempt holds the job, or it has finished. */
export class LeaseLostError extends StoreError {
  readonly code = StoreErrorCode.LeaseLost;
  constructor(readonly jobId: string, reason: string) {
    super(`lease on job ${jobId} lost: ${reason}`);
    this.name = "LeaseLostError";
  }
}

/** The request's queue is not the leased job's queue. */
export class QueueMismatchError extends StoreError {
  readonly code = StoreErrorCode.QueueMismatch;
  constructor(readonly expected: string, readonly actual: string) {
    super(`queue "${actual}" does not match the job's queue "${expected}"`);
    this.name = "QueueMismatchError";
  }
}

/** The request's job id is not the id the task token leases. */
export class JobMismatchError extends StoreError {
  readonly code = StoreErrorCode.JobMismatch;
  constructor(readonly expected: string, readonly actual: string) {
    super(`job id ${actual} does not match the task token's job ${expected}`);
    this.name = "JobMismatchError";
  }
}

/** An event is larger than the backend's limit. */
export class EventTooLargeError extends StoreError {
  readonly code = StoreErrorCode.EventTooLarge;
  constructor(readonly sizeBytes: number, readonly limitBytes: number) {
    super(`event of ${sizeBytes} bytes exceeds the limit of ${limitBytes} bytes`);
    this.name = "EventTooLargeError";
  }
}

/** An event is malformed. */
export class InvalidEventError extends StoreError {
  readonly code = StoreErrorCode.InvalidEvent;
  constructor(reason: string) {
    super(`invalid event: ${reason}`);
    this.name = "InvalidEventError";
  }
}

/** A request_id was used before for a different job. */
export class IdempotencyConflictError extends StoreError {
  readonly code = StoreErrorCode.IdempotencyConflict;
  constructor(readonly requestId: string, readonly existingJobId: string) {
    super(
      `request_id "${requestId}" was already used for job ${existingJobId} with different parameters`,
    );
    this.name = "IdempotencyConflictError";
  }
}

/** The backend throttled the request and retries did not get through. */
export class ThrottledError extends StoreError {
  readonly code = StoreErrorCode.Throttled;
  constructor(operation: string) {
    super(`store is throttling ${operation}; try again later`);
    this.name = "ThrottledError";
  }
}

/** The store has been closed. */
export class StoreClosedError extends StoreError {
  readonly code = StoreErrorCode.StoreClosed;
  constructor() {
    super("store is closed");
    this.name = "StoreClosedError";
  }
}

/** The queue has nothing behind it (on AWS: no SQS queue by that name or URL). */
export class QueueNotFoundError extends StoreError {
  readonly code = StoreErrorCode.QueueNotFound;
  constructor(queue: string, hint: string) {
    super(`queue "${queue}" does not exist (${hint})`);
    this.name = "QueueNotFoundError";
  }
}

/** The backend failed or could not be reached; the call may be retried. */
export class BackendUnavailableError extends StoreError {
  readonly code = StoreErrorCode.BackendUnavailable;
  constructor(operation: string, reason: string) {
    super(`${operation} failed: ${reason}`);
    this.name = "BackendUnavailableError";
  }
}

/**
 * The store's disk refused a write: it is full (or failing, which SQLite
 * reports alike). Nothing of the refused call was written, so it can be
 * retried as it was once space is freed; reads go on meanwhile.
 */
export class StoreFullError extends StoreError {
  readonly code = StoreErrorCode.StoreFull;
  constructor(readonly dir: string, options?: ErrorOptions) {
    super(`no space left for the job store in ${dir}`, options);
    this.name = "StoreFullError";
  }
}
