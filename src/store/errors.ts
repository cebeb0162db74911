/**
 * The closed set of errors every JobStore backend throws. Callers branch on
 * {@link StoreError.code} (or `instanceof`), never on message text; the server
 * maps each code to one Connect code at its edge.
 *
 * @module
 */

import { StoreError, StoreErrorCode } from "../protocol/errors.ts";

export {
  EventTooLargeError,
  InvalidEventError,
  StoreError,
  StoreErrorCode,
} from "../protocol/errors.ts";

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

/** The job is no dead letter: only a job FAILED after using every attempt can be redriven. */
export class JobNotRedrivableError extends StoreError {
  readonly code = StoreErrorCode.JobNotRedrivable;
  constructor(readonly jobId: string, why: string) {
    super(`job ${jobId} cannot be redriven: ${why}`);
    this.name = "JobNotRedrivableError";
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

/** No schedule has the given name. */
export class ScheduleNotFoundError extends StoreError {
  readonly code = StoreErrorCode.ScheduleNotFound;
  constructor(readonly scheduleName: string) {
    super(`schedule "${scheduleName}" not found`);
    this.name = "ScheduleNotFoundError";
  }
}

/** A schedule of this name exists already. */
export class ScheduleExistsError extends StoreError {
  readonly code = StoreErrorCode.ScheduleExists;
  constructor(readonly scheduleName: string) {
    super(
      `schedule "${scheduleName}" exists already (replace it with --replace, or delete it first)`,
    );
    this.name = "ScheduleExistsError";
  }
}

/** The store keeps as many schedules as it may. */
export class TooManySchedulesError extends StoreError {
  readonly code = StoreErrorCode.TooManySchedules;
  constructor(limit: number, owner?: string) {
    super(
      owner === undefined
        ? `the store keeps at most ${limit} schedules; delete one first`
        : `"${owner}" has ${limit} schedules, the most one owner may have; delete one first (admin is not limited)`,
    );
    this.name = "TooManySchedulesError";
  }
}
