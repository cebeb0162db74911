/**
 * The typed errors both ends of the wire agree on: the closed set of store
 * error codes (the server maps each to one Connect code at its edge), their
 * base class, and the errors of event sequencing, which the worker meets
 * before an event is sent and the store meets when it arrives.
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
  /** The job is not a dead letter (FAILED after using every attempt), so it cannot be redriven. */
  JobNotRedrivable: "job_not_redrivable",
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
  /** No schedule has this name. */
  ScheduleNotFound: "schedule_not_found",
  /** A schedule of this name exists already (create without replace). */
  ScheduleExists: "schedule_exists",
  /** The store keeps as many schedules as it may (MAX_SCHEDULES). */
  TooManySchedules: "too_many_schedules",
} as const;

/** One of {@link StoreErrorCode}'s values. */
export type StoreErrorCode = typeof StoreErrorCode[keyof typeof StoreErrorCode];

/** Base class of every error a JobStore throws on purpose. */
export abstract class StoreError extends Error {
  abstract readonly code: StoreErrorCode;
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
