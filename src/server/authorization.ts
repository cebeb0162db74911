/**
 * The server's guard: every RPC needs a valid API token whose scope covers
 * the procedure. Runs as the innermost interceptor, so the logging
 * interceptor still logs refused calls (with the caller's subject when the
 * token was good, never the token).
 *
 * @module
 */
import { createContextKey, type Interceptor } from "@connectrpc/connect";
import { PermissionDeniedError } from "../auth/errors.ts";
import type { ApiTokenVerifier, Caller } from "../auth/jwt.ts";
import { procedureName, requiredScope, scopesAllow } from "../auth/scopes.ts";

/** The authenticated caller of the current call, for logs and services. */
export const CALLER = createContextKey<Caller | undefined>(undefined, {
  description: "authenticated caller",
});

/** An interceptor that refuses calls without a valid token of a sufficient scope. */
export function requireApiToken(verifier: ApiTokenVerifier): Interceptor {
  return (next) => async (req) => {
    const caller = await verifier.authenticate(req.header.get("authorization"));
    req.contextValues.set(CALLER, caller);
    const procedure = procedureName(req.service.typeName, req.method.name);
    if (!scopesAllow(caller.scopes, procedure)) {
      throw new PermissionDeniedError(
        `the token of "${caller.subject}" has scope ${
          caller.scopes.join(" ")
        }; ${req.method.name} needs ${requiredScope(procedure)} (or admin)`,
      );
    }
    return await next(req);
  };
}
