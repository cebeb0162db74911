/**
 * RPC error codes and errors without the Connect runtime: the CLI's JSON
 * client throws {@link RpcError}, the worker's Connect client throws
 * ConnectError, and code that handles both (retry rules, the CLI's error
 * report) reads them through {@link rpcErrorOf}. Importing ConnectError
 * would load @connectrpc/connect and the protobuf runtime into every CLI
 * call (see scripts/gen_lite.ts for the figures). Pure; a foundation module
 * because retry.ts reads it.
 *
 * The numbers are the Connect (and gRPC) code numbers, so a code from
 * either error compares equal; tests/rpc_error_test.ts holds them
 * to @connectrpc/connect's `Code`.
 *
 * @module
 */
import type { Code } from "@connectrpc/connect";

/** Connect's `Code`, as a plain object. */
export const RpcCode = {
  Canceled: 1 as Code.Canceled,
  Unknown: 2 as Code.Unknown,
  InvalidArgument: 3 as Code.InvalidArgument,
  DeadlineExceeded: 4 as Code.DeadlineExceeded,
  NotFound: 5 as Code.NotFound,
  AlreadyExists: 6 as Code.AlreadyExists,
  PermissionDenied: 7 as Code.PermissionDenied,
  ResourceExhausted: 8 as Code.ResourceExhausted,
  FailedPrecondition: 9 as Code.FailedPrecondition,
  Aborted: 10 as Code.Aborted,
  OutOfRange: 11 as Code.OutOfRange,
  Unimplemented: 12 as Code.Unimplemented,
  Internal: 13 as Code.Internal,
  Unavailable: 14 as Code.Unavailable,
  DataLoss: 15 as Code.DataLoss,
  Unauthenticated: 16 as Code.Unauthenticated,
} as const;

/** A code's name on the wire: `not_found`, `invalid_argument`. */
export function rpcCodeName(code: Code): string {
  const entry = Object.entries(RpcCode).find(([, n]) => n === code);
  if (entry === undefined) return String(code);
  return entry[0].replace(/[A-Z]/g, (c, i) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`));
}

/** The code a wire name stands for, if it names one. */
export function rpcCodeFromName(name: string): Code | undefined {
  for (const code of Object.values(RpcCode)) if (rpcCodeName(code) === name) return code;
  return undefined;
}

/**
 * What an HTTP status without a Connect error body means, by the Connect
 * protocol's table (400 internal, 401 unauthenticated, 403
 * permission_denied, 404 unimplemented, 429/502/503/504 unavailable).
 */
export function rpcCodeFromHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return RpcCode.Internal;
    case 401:
      return RpcCode.Unauthenticated;
    case 403:
      return RpcCode.PermissionDenied;
    case 404:
      return RpcCode.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return RpcCode.Unavailable;
    default:
      return RpcCode.Unknown;
  }
}

/** A failed call, as the CLI's JSON client reports it. Its message reads like ConnectError's. */
export class RpcError extends Error {
  readonly code: Code;
  /** The message without the `[code]` prefix. */
  readonly rawMessage: string;

  constructor(rawMessage: string, code: Code, options?: { cause?: unknown }) {
    super(`[${rpcCodeName(code)}] ${rawMessage}`, options);
    this.name = "RpcError";
    this.code = code;
    this.rawMessage = rawMessage;
  }
}

/** The parts of a failed call that callers read, whichever client failed. */
export interface RpcFailure {
  readonly code: Code;
  readonly rawMessage: string;
  readonly cause?: unknown;
}

/**
 * `error` as a failed call, or undefined when it is something else: an
 * RpcError, or a ConnectError (told by its name and numeric code, so this
 * module needs no Connect runtime).
 */
export function rpcErrorOf(error: unknown): RpcFailure | undefined {
  if (error instanceof RpcError) return error;
  if (
    error instanceof Error && error.name === "ConnectError" &&
    typeof (error as { code?: unknown }).code === "number"
  ) {
    return error as Error & RpcFailure;
  }
  return undefined;
}

/**
 * The code of any error, the way ConnectError.from reads it: a failed
 * call's own code, canceled for an abort (AbortError, TimeoutError), unknown
 * for anything else.
 */
export function rpcErrorCode(error: unknown): Code {
  const failure = rpcErrorOf(error);
  if (failure !== undefined) return failure.code;
  if (error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError")) {
    return RpcCode.Canceled;
  }
  return RpcCode.Unknown;
}
