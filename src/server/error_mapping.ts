/**
 * The server edge's error translation: every typed error becomes exactly one
 * Connect code, and anything unexpected becomes Internal without leaking its
 * details to the client.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { StoreError, type StoreErrorCode } from "../store/errors.ts";
import { InvalidArgumentError } from "./request_validation.ts";

/** The Connect code of each store error. */
export const CONNECT_CODE_OF: Readonly<Record<StoreErrorCode, Code>> = {
  job_not_found: Code.NotFound,
  invalid_task_token: Code.InvalidArgument,
  lease_lost: Code.FailedPrecondition,
  queue_mismatch: Code.InvalidArgument,
  job_mismatch: Code.InvalidArgument,
  event_too_large: Code.ResourceExhausted,
  invalid_event: Code.InvalidArgument,
  idempotency_conflict: Code.AlreadyExists,
  throttled: Code.Unavailable,
  store_closed: Code.Unavailable,
};

/** Whether `error` is one the server raises on purpose (and may show to clients). */
export function isExpectedError(error: unknown): boolean {
  return error instanceof ConnectError || error instanceof StoreError ||
    error instanceof InvalidArgumentError;
}

/** Translates any error thrown by a handler into the ConnectError to send. */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof InvalidArgumentError) {
    return new ConnectError(error.message, Code.InvalidArgument);
  }
  if (error instanceof StoreError) {
    return new ConnectError(error.message, CONNECT_CODE_OF[error.code]);
  }
  return new ConnectError("internal error", Code.Internal);
}
