/**
 * The server edge's error translation: every typed error becomes exactly one
 * Connect code, and anything unexpected becomes Internal without leaking its
 * details to the client.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { PermissionDeniedError, UnauthenticatedError } from "../auth/errors.ts";
import { StoreError, type StoreErrorCode } from "../store/errors.ts";
import { create } from "@bufbuild/protobuf";
import { type OperationError, OperationErrorSchema } from "../../gen/job/v1/job_pb.ts";
import type { Logger } from "../logger.ts";
import { InvalidArgumentError } from "../protocol/request_validation.ts";
import { RequestBodyError, type RequestBodyErrorCode } from "./request_body.ts";

/** The Connect code of each store error. */
export const CONNECT_CODE_OF: Readonly<Record<StoreErrorCode, Code>> = {
  job_not_found: Code.NotFound,
  job_finished: Code.FailedPrecondition,
  job_not_redrivable: Code.FailedPrecondition,
  invalid_task_token: Code.InvalidArgument,
  lease_lost: Code.FailedPrecondition,
  queue_mismatch: Code.InvalidArgument,
  job_mismatch: Code.InvalidArgument,
  event_too_large: Code.ResourceExhausted,
  invalid_event: Code.InvalidArgument,
  idempotency_conflict: Code.AlreadyExists,
  throttled: Code.Unavailable,
  store_closed: Code.Unavailable,
  queue_not_found: Code.NotFound,
  backend_unavailable: Code.Unavailable,
  store_full: Code.ResourceExhausted,
  schedule_not_found: Code.NotFound,
  schedule_exists: Code.AlreadyExists,
  too_many_schedules: Code.ResourceExhausted,
};

/** The Connect code of each way the HTTP edge refuses a request body. */
export const CONNECT_CODE_OF_BODY_ERROR: Readonly<Record<RequestBodyErrorCode, Code>> = {
  body_too_large: Code.ResourceExhausted,
  body_incomplete: Code.InvalidArgument,
  body_idle: Code.DeadlineExceeded,
  json_too_deep: Code.InvalidArgument,
};

/** The request field a store error is about, named in the message as validation errors are. */
const FIELD_OF: Partial<Record<StoreErrorCode, string>> = {
  invalid_task_token: "task_token",
  queue_mismatch: "queue",
  job_mismatch: "job_result.job_id",
  invalid_event: "events",
  event_too_large: "events",
};

/** Whether `error` is one the server raises on purpose (and may show to clients). */
export function isExpectedError(error: unknown): boolean {
  return error instanceof ConnectError || error instanceof StoreError ||
    error instanceof InvalidArgumentError || error instanceof UnauthenticatedError ||
    error instanceof PermissionDeniedError || isAbort(error) ||
    error instanceof RequestBodyError;
}

/** A client that went away (or a deadline that passed) aborts its call; that is no server fault. */
function isAbort(error: unknown): boolean {
  return error instanceof DOMException &&
    (error.name === "AbortError" || error.name === "TimeoutError");
}

/** Translates any error thrown by a handler into the ConnectError to send. */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof InvalidArgumentError) {
    return new ConnectError(error.message, Code.InvalidArgument);
  }
  if (error instanceof UnauthenticatedError) {
    return new ConnectError(error.message, Code.Unauthenticated);
  }
  if (error instanceof PermissionDeniedError) {
    return new ConnectError(error.message, Code.PermissionDenied);
  }
  if (error instanceof StoreError) {
    const field = FIELD_OF[error.code];
    const message = field === undefined ? error.message : `${field}: ${error.message}`;
    return new ConnectError(message, CONNECT_CODE_OF[error.code]);
  }
  if (isAbort(error)) return new ConnectError("the call was cancelled", Code.Canceled);
  if (error instanceof RequestBodyError) {
    return new ConnectError(error.message, CONNECT_CODE_OF_BODY_ERROR[error.code]);
  }
  return new ConnectError("internal error", Code.Internal);
}

/**
 * The error of one item of a batch or one session operation, as sent to the
 * client: the same code and message a single call would end with. An
 * unexpected error is logged here, since no RPC ends with it.
 */
export function operationError(error: unknown, logger: Logger): OperationError {
  if (!isExpectedError(error)) logger.error({ err: error }, "operation failed unexpectedly");
  const connectError = toConnectError(error);
  return create(OperationErrorSchema, {
    code: connectError.code,
    message: connectError.rawMessage,
  });
}
