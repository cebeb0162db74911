/**
 * `airunner token`: mint an API token, and `airunner token keygen`: make the
 * P-256 key pair that signs (private.pem) and verifies (public.pem) them.
 *
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import { join } from "node:path";
import { mintApiToken } from "../auth/jwt.ts";
import {
  generateP256KeyPair,
  importP256PrivateKey,
  privateKeyToPem,
  publicKeyToPem,
} from "../auth/keys.ts";
import { isScope, type Scope, SCOPES } from "../auth/scopes.ts";
import type { ExitCodeSink } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { parseDurationMs, UsageError } from "./parse.ts";
import { pemFrom } from "./security_options.ts";

/** Longest token lifetime `airunner token` mints. */
const MAX_TTL_MS = 366 * 24 * 3600 * 1000;
/** Longest subject. */
const MAX_SUBJECT_LENGTH = 256;

/** Builds the `token` command and its `keygen` subcommand. */
export function tokenCommand(setExitCode: ExitCodeSink) {
  const token = new Command("token")
    .description("mint an API token, or make its signing keys (token keygen)")
    .addOption(
      new Option(
        "--subject <name>",
        "who the token is for (the sub claim), such as ci or worker-1",
      ),
    )
    .addOption(new Option("--ttl <duration>", "how long the token is valid").default("1h"))
    .addOption(
      new Option(
        "--scope <scopes>",
        `what it may do: ${SCOPES.join(", ")} (comma-separated)`,
      ).default("submit"),
    )
    .option("--json", "print {token, subject, scopes, expiresAt} instead of the token alone", false)
    .addOption(
      new Option(
        "--signing-key <file>",
        "PEM P-256 private key, PKCS#8 or SEC1 (JWT_SIGNING_KEY may hold the PEM itself)",
      ).env("JWT_SIGNING_KEY"),
    )
    .addHelpText(
      "after",
      `
Scopes:
  submit   submit, get, list, cancel and follow jobs; add schedules and
           manage its own
  worker   take jobs, report their output and results
  admin    everything

Examples:
  airunner token keygen --out keys
  airunner token --signing-key keys/private.pem --subject ci --ttl 30d
  airunner token --signing-key keys/private.pem --subject worker-1 --scope worker --ttl 90d`,
    )
    .action(async (opts) => {
      try {
        const request = parseTokenRequest(opts);
        if (opts.signingKey === undefined) {
          throw new UsageError(
            "--signing-key: required (or JWT_SIGNING_KEY); make one with: airunner token keygen --out DIR",
          );
        }
        const { text, source } = await pemFrom(opts.signingKey, "--signing-key");
        const key = await importP256PrivateKey(text, source);
        const token = await mintApiToken(key, request);
        console.log(
          opts.json
            ? JSON.stringify({
              token,
              subject: request.subject,
              scopes: request.scopes,
              // The token's own exp claim, which mintApiToken sets from the ttl.
              expiresAt: new Date(expiryOf(token) * 1000).toISOString(),
            })
            : token,
        );
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error));
      }
    });
  token.addCommand(keygenCommand(setExitCode));
  return token;
}

function keygenCommand(setExitCode: ExitCodeSink) {
  return new Command("keygen")
    .description("write a P-256 key pair: DIR/private.pem (0600) and DIR/public.pem")
    .requiredOption("--out <dir>", "directory to write the keys to (created if missing)")
    .option("--json", "print {privateKey, publicKey}: the paths written", false)
    .addHelpText(
      "after",
      "\nExample:\n  airunner token keygen --out keys\n  airunner server --jwt-public-key keys/public.pem",
    )
    .action(async (opts, command) => {
      try {
        const paths = await writeKeyPair(opts.out);
        // `token`'s own --json takes the flag when it is given after keygen.
        if (opts.json || command.parent?.opts().json === true) console.log(JSON.stringify(paths));
        console.error(
          `airunner: wrote ${paths.privateKey} (keep it secret: it signs tokens) and ${paths.publicKey}\n` +
            `  server:  airunner server --jwt-public-key ${paths.publicKey}\n` +
            `  tokens:  airunner token --signing-key ${paths.privateKey} --subject NAME --scope submit`,
        );
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error));
      }
    });
}

/** The exp claim (Unix seconds) of a JWT minted here. */
function expiryOf(token: string): number {
  const payload = token.split(".")[1] ?? "";
  const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
  return (JSON.parse(json) as { exp: number }).exp;
}

/** Checks the token flags; pure. */
export function parseTokenRequest(opts: {
  subject?: string | undefined;
  ttl: string;
  scope: string;
}): { subject: string; ttlSeconds: number; scopes: Scope[] } {
  const subject = opts.subject?.trim() ?? "";
  if (subject === "") throw new UsageError("--subject: required (who the token is for)");
  if (subject.length > MAX_SUBJECT_LENGTH) {
    throw new UsageError(`--subject: at most ${MAX_SUBJECT_LENGTH} characters`);
  }
  const ttlMs = parseDurationMs(opts.ttl, "--ttl");
  if (ttlMs < 1000 || ttlMs > MAX_TTL_MS) {
    throw new UsageError("--ttl: must be between 1s and 366d");
  }
  const names = opts.scope.split(/[,\s]+/).filter((s) => s !== "");
  const unknown = names.find((s) => !isScope(s));
  if (names.length === 0 || unknown !== undefined) {
    throw new UsageError(
      `--scope: ${
        unknown === undefined ? "empty" : `"${unknown}" is not a scope`
      } (one or more of ${SCOPES.join(", ")})`,
    );
  }
  return { subject, ttlSeconds: Math.round(ttlMs / 1000), scopes: [...new Set(names as Scope[])] };
}

/** Writes a new key pair under `dir`; refuses to replace an existing private key. */
export async function writeKeyPair(
  dir: string,
): Promise<{ privateKey: string; publicKey: string }> {
  await Deno.mkdir(dir, { recursive: true });
  const paths = { privateKey: join(dir, "private.pem"), publicKey: join(dir, "public.pem") };
  const keys = await generateP256KeyPair();
  try {
    // createNew: never overwrite a key that may already sign live tokens.
    await Deno.writeTextFile(paths.privateKey, await privateKeyToPem(keys.privateKey), {
      createNew: true,
      mode: 0o600,
    });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new UsageError(
        `--out: ${paths.privateKey} already exists; move it away or choose another directory`,
      );
    }
    throw error;
  }
  if (Deno.build.os !== "windows") await Deno.chmod(paths.privateKey, 0o600);
  await Deno.writeTextFile(paths.publicKey, await publicKeyToPem(keys.publicKey), { mode: 0o644 });
  return paths;
}
