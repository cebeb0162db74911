/**
 * The security flags of the serving commands (`server`, `orchestrator`):
 * `--jwt-public-key` / JWT_PUBLIC_KEY, `--no-auth`, and `--tls-cert` +
 * `--tls-key` or `--tls auto`. A server is closed by default: without a
 * public key it refuses to start unless `--no-auth` says otherwise.
 *
 * @module
 */
import { Option } from "@commander-js/extra-typings";
import { ensureAutoTls } from "../auth/auto_tls.ts";
import { ApiTokenVerifier } from "../auth/jwt.ts";
import { importP256PublicKeys } from "../auth/keys.ts";
import { isLoopback } from "./parse.ts";
import { UsageError } from "./parse.ts";

/** `--jwt-public-key FILE`: PEM public key(s) that sign accepted tokens. */
export function jwtPublicKeyOption() {
  return new Option(
    "--jwt-public-key <file>",
    "PEM file of the P-256 public key(s) whose ES256 tokens are accepted (JWT_PUBLIC_KEY may hold the PEM itself)",
  ).env("JWT_PUBLIC_KEY");
}

/** `--no-auth`: accept every call without a token. */
export function noAuthOption() {
  return new Option(
    "--no-auth",
    "accept every call without a token (anyone who can connect can run commands)",
  );
}

/** `--tls-cert FILE`. */
export function tlsCertOption() {
  return new Option("--tls-cert <file>", "serve HTTPS with this PEM certificate (chain)").env(
    "AIRUNNER_TLS_CERT",
  );
}

/** `--tls-key FILE`. */
export function tlsKeyOption() {
  return new Option("--tls-key <file>", "PEM private key of --tls-cert").env("AIRUNNER_TLS_KEY");
}

/** `--tls auto`. */
export function tlsModeOption() {
  return new Option(
    "--tls <mode>",
    "auto: serve HTTPS with a private CA made once under <data-dir>/tls (clients trust its ca.pem)",
  ).choices(["auto"] as const).env("AIRUNNER_TLS");
}

/** What the security flags carry. */
export interface SecurityFlags {
  readonly jwtPublicKey?: string | undefined;
  /** False when --no-auth was given (commander's negated flag). */
  readonly auth: boolean;
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
  readonly tls?: "auto" | undefined;
}

/** What the server is to do about authentication and TLS. */
export interface SecuritySettings {
  readonly auth?: ApiTokenVerifier;
  readonly tls?: { readonly certPem: string; readonly keyPem: string };
  /** Lines to print on stderr at start: warnings and where the CA is. */
  readonly notices: readonly string[];
}

/** Reads keys and certificates the flags name; refuses an open server nobody asked for. */
export async function resolveSecurity(
  flags: SecurityFlags,
  context: { readonly hostname: string; readonly dataDir: string },
): Promise<SecuritySettings> {
  const notices: string[] = [];
  let auth: ApiTokenVerifier | undefined;
  // An empty JWT_PUBLIC_KEY (as env files leave it) means "not set".
  if (flags.jwtPublicKey === "") flags = { ...flags, jwtPublicKey: undefined };
  if (flags.jwtPublicKey !== undefined && !flags.auth) {
    throw new UsageError(
      "--no-auth: conflicts with --jwt-public-key (or JWT_PUBLIC_KEY); give one",
    );
  }
  if (flags.jwtPublicKey !== undefined) {
    const { text, source } = await pemFrom(flags.jwtPublicKey, "--jwt-public-key");
    auth = new ApiTokenVerifier(await importP256PublicKeys(text, source));
  } else if (flags.auth) {
    throw new UsageError(
      "--jwt-public-key: required, because whoever can call this server can run commands on its workers (make keys with: airunner token keygen --out DIR; or pass --no-auth to accept every caller)",
    );
  } else if (!isLoopback(context.hostname)) {
    notices.push(
      `airunner: WARNING: --no-auth on ${context.hostname}: ANYONE who can reach this address can run commands on your workers`,
    );
  } else {
    notices.push("airunner: warning: --no-auth: every caller on this host is accepted");
  }

  let tls: SecuritySettings["tls"];
  if (flags.tls === "auto") {
    if (flags.tlsCert !== undefined || flags.tlsKey !== undefined) {
      throw new UsageError(
        "--tls auto: conflicts with --tls-cert/--tls-key; give one or the other",
      );
    }
    const made = await ensureAutoTls(context.dataDir);
    tls = { certPem: made.certPem, keyPem: made.keyPem };
    if (made.renewalPutOff !== undefined) notices.push(made.renewalPutOff);
    notices.push(
      `airunner: TLS with a private CA${
        made.createdCa ? " (new)" : ""
      }; clients trust it with --ca-cert ${made.caPath} (or AIRUNNER_CA_CERT)`,
    );
  } else if (flags.tlsCert !== undefined || flags.tlsKey !== undefined) {
    if (flags.tlsCert === undefined || flags.tlsKey === undefined) {
      throw new UsageError("--tls-cert and --tls-key: give both, or --tls auto");
    }
    const certPem = (await pemFrom(flags.tlsCert, "--tls-cert", true)).text;
    const keyPem = (await pemFrom(flags.tlsKey, "--tls-key", true)).text;
    if (!certPem.includes("-----BEGIN CERTIFICATE-----")) {
      throw new UsageError(`--tls-cert: ${flags.tlsCert} holds no PEM "CERTIFICATE" block`);
    }
    if (!/-----BEGIN (EC |RSA )?PRIVATE KEY-----/.test(keyPem)) {
      throw new UsageError(`--tls-key: ${flags.tlsKey} holds no PEM private key`);
    }
    tls = { certPem, keyPem };
  }
  return {
    ...(auth === undefined ? {} : { auth }),
    ...(tls === undefined ? {} : { tls }),
    notices,
  };
}

/**
 * PEM text from a flag that takes a file, or (from an environment variable)
 * the PEM itself.
 */
export async function pemFrom(
  value: string,
  flag: string,
  fileOnly = false,
): Promise<{ text: string; source: string }> {
  if (!fileOnly && value.includes("-----BEGIN ")) return { text: value, source: flag };
  try {
    return { text: await Deno.readTextFile(value), source: `${flag} ${value}` };
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${value}: ${(error as Error).message}`);
  }
}
