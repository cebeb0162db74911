/**
 * How the CLI reports failures: one line on stderr, `airunner: error: ...`,
 * with a hint where one helps, and an exit code that tells usage mistakes
 * (2) from failed requests (1) and from airunner being unable to work at all
 * (125).
 *
 * @module
 */
import { RpcCode, rpcCodeName, rpcErrorOf, type RpcFailure } from "../rpc_error.ts";
import { InvalidServerUrlError } from "../protocol/server_url.ts";
import { ExitCode } from "./exit_codes.ts";
import { UsageError } from "./parse.ts";
import { DataDirError } from "../store/sqlite/schema.ts";
import { InvalidKeyError } from "../auth/keys.ts";

/** The one-line message and exit code for `error`. */
export function describeError(
  error: unknown,
  serverUrl?: string,
): { message: string; exitCode: number } {
  if (
    error instanceof UsageError || error instanceof InvalidServerUrlError ||
    error instanceof InvalidKeyError
  ) {
    return { message: error.message, exitCode: ExitCode.Usage };
  }
  if (error instanceof DataDirError) {
    return { message: error.message, exitCode: ExitCode.Error };
  }
  const failure = rpcErrorOf(error);
  if (failure !== undefined) {
    const certificateProblem = untrustedCertificate(failure);
    if (certificateProblem !== undefined) {
      const where = serverUrl === undefined ? "the server" : `the server at ${serverUrl}`;
      return {
        message:
          `cannot trust the TLS certificate of ${where}: ${certificateProblem} (pass the CA that signed it with --ca-cert FILE or AIRUNNER_CA_CERT; "airunner server --tls auto" prints its path)`,
        exitCode: ExitCode.AirunnerFailed,
      };
    }
    if (isUnreachable(failure)) {
      const where = serverUrl === undefined ? "the server" : `the server at ${serverUrl}`;
      return {
        message:
          `cannot reach ${where} (is "airunner server" or "airunner dev" running? set --server or AIRUNNER_SERVER)`,
        exitCode: ExitCode.AirunnerFailed,
      };
    }
    const failedAirunner = failure.code === RpcCode.Unauthenticated ||
      failure.code === RpcCode.Internal || failure.code === RpcCode.Unimplemented;
    return {
      message: `${failure.rawMessage} (${rpcCodeName(failure.code)})`,
      exitCode: failedAirunner ? ExitCode.AirunnerFailed : ExitCode.Error,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { message, exitCode: ExitCode.AirunnerFailed };
}

/** Exit code when whoever read our output went away (as if killed by SIGPIPE). */
const BROKEN_PIPE_EXIT = 141;

/** Prints `error` as one line on stderr and returns its exit code. */
export function reportError(error: unknown, serverUrl?: string): number {
  // `airunner ... | head -1`: the reader has all it wanted; stop quietly.
  if (error instanceof Deno.errors.BrokenPipe) return BROKEN_PIPE_EXIT;
  const { message, exitCode } = describeError(error, serverUrl);
  console.error(`airunner: error: ${message.replaceAll("\n", " ")}`);
  return exitCode;
}

/** The TLS verification failure behind `error`, if that is what it is. */
function untrustedCertificate(error: RpcFailure): string | undefined {
  const text = causeChainText(error);
  const match = /invalid peer certificate: ([A-Za-z]+)|certificate verify failed[^)]*/.exec(text);
  if (match === null) return undefined;
  return match[1] === undefined ? match[0] : `invalid peer certificate (${match[1]})`;
}

/** The messages of `error` and every cause below it (fetch nests the TLS reason two deep). */
function causeChainText(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    parts.push(current instanceof Error ? current.message : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(" | ");
}

/**
 * Whether `error` says the server could not be reached at all, for the hint
 * to start one. Not a retry rule (what is worth another try is
 * isTransient in retry.ts): a failed fetch surfaces as unknown, so that is
 * told from a server's own unknown error by its cause.
 */
function isUnreachable(error: RpcFailure): boolean {
  if (error.code !== RpcCode.Unavailable && error.code !== RpcCode.Unknown) return false;
  const text = causeChainText(error);
  return /connection refused|error sending request|tcp connect|dns error|failed to lookup address|fetch failed|network/i
    .test(text) || error.code === RpcCode.Unavailable;
}
