/**
 * The server's guard: every RPC needs a valid API token whose scope covers
 * the procedure. The HTTP edge (src/server/rpc_route.ts) applies it to the
 * request's headers before it reads any of the body, so a caller without a
 * token cannot make the server buffer, parse or wait for anything; the
 * caller it proves travels with the call as a context value, for the
 * services and the log line (which names the subject, never the token).
 *
 * @module
 */
import { type ContextValues, createContextKey } from "@connectrpc/connect";
import { PermissionDeniedError } from "../auth/errors.ts";
import type { ApiTokenVerifier, Caller } from "../auth/jwt.ts";
import { requiredScope, scopesAllow } from "../auth/scopes.ts";

/** The authenticated caller of the current call, for logs and services. */
export const CALLER = createContextKey<Caller | undefined>(undefined, {
  description: "authenticated caller",
});

/**
 * Checks that `authorization` (the request's Authorization header) proves
 * a caller whose scope covers `procedure` ("job.v1.JobService/EnqueueJob"),
 * and records the caller in `values` as soon as the token is good, so a
 * call refused for its scope is still logged with its subject.
 * @throws {UnauthenticatedError} for a missing, malformed or invalid token.
 * @throws {PermissionDeniedError} for a scope that does not cover the call.
 */
export async function authorizeCall(
  verifier: ApiTokenVerifier,
  authorization: string | null,
  procedure: string,
  values: ContextValues,
): Promise<void> {
  const caller = await verifier.authenticate(authorization);
  values.set(CALLER, caller);
  if (!scopesAllow(caller.scopes, procedure)) {
    const method = procedure.slice(procedure.lastIndexOf("/") + 1);
    throw new PermissionDeniedError(
      `the token of "${caller.subject}" has scope ${caller.scopes.join(" ")}; ${method} needs ${
        requiredScope(procedure)
      } (or admin)`,
    );
  }
}
