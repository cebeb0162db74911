/**
 * Why a call was refused before it reached a service: no usable token
 * (Unauthenticated) or a token whose scope does not cover the procedure
 * (PermissionDenied). Messages say what was wrong and never contain the token.
 *
 * @module
 */

/** The caller did not prove who it is. */
export class UnauthenticatedError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "UnauthenticatedError";
  }
}

/** The caller is known but its token's scope does not allow this call. */
export class PermissionDeniedError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "PermissionDeniedError";
  }
}
