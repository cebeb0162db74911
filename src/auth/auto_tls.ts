/**
 * `--tls auto`: a private CA made once under `<data-dir>/tls/` and a server
 * certificate for localhost, 127.0.0.1 and ::1 that it signs. The CA stays
 * (clients keep trusting `ca.pem`); the server certificate is issued again
 * when it is missing or has less than 30 days left.
 *
 * Files: `ca.pem`, `ca-key.pem` (0600), `server.pem`, `server-key.pem` (0600).
 *
 * @module
 */
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import {
  type CertificateAuthority,
  createCertificateAuthority,
  issueServerCertificate,
} from "./certificates.ts";
import { importP256PrivateKey, publicKeyOf } from "./keys.ts";

const CA_VALID_DAYS = 3650;
const SERVER_VALID_DAYS = 397;
const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;
/** The names a local client uses to reach this host. */
export const AUTO_TLS_NAMES = { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"] };

/** The certificate and key a server serves, and the CA clients should trust. */
export interface AutoTls {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPath: string;
  /** Whether this call created the CA (so the operator should hand out ca.pem). */
  readonly createdCa: boolean;
  /** Why a due renewal was put off (no space to write it), to print at start. */
  readonly renewalPutOff?: string;
}

/** Loads (or makes) the private CA and a current server certificate under `dataDir/tls`. */
export async function ensureAutoTls(dataDir: string, nowMs = Date.now()): Promise<AutoTls> {
  const dir = join(dataDir, "tls");
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const paths = {
    ca: join(dir, "ca.pem"),
    caKey: join(dir, "ca-key.pem"),
    server: join(dir, "server.pem"),
    serverKey: join(dir, "server-key.pem"),
  };

  let ca: CertificateAuthority;
  let createdCa = false;
  const existingCa = await readIfExists(paths.ca);
  const existingCaKey = await readIfExists(paths.caKey);
  if (existingCa !== undefined && existingCaKey !== undefined) {
    const privateKey = await importP256PrivateKey(existingCaKey, paths.caKey);
    ca = {
      commonName: commonNameOf(existingCa),
      privateKey,
      publicKey: await publicKeyOf(privateKey),
    };
  } else {
    const suffix = Array.from(
      crypto.getRandomValues(new Uint8Array(4)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    const made = await createCertificateAuthority(
      `airunner private CA ${suffix}`,
      nowMs,
      CA_VALID_DAYS,
    );
    await writeSecret(paths.caKey, made.keyPem);
    await Deno.writeTextFile(paths.ca, made.certPem, { mode: 0o644 });
    ca = made.ca;
    createdCa = true;
  }

  let certPem = await readIfExists(paths.server);
  let keyPem = await readIfExists(paths.serverKey);
  let renewalPutOff: string | undefined;
  if (createdCa || certPem === undefined || keyPem === undefined || expiresSoon(certPem, nowMs)) {
    const issued = await issueServerCertificate(ca, AUTO_TLS_NAMES, nowMs, SERVER_VALID_DAYS);
    try {
      await replacePair(
        { path: paths.serverKey, text: issued.keyPem, mode: 0o600 },
        { path: paths.server, text: issued.certPem, mode: 0o644 },
      );
      certPem = issued.certPem;
      keyPem = issued.keyPem;
    } catch (error) {
      // A full disk must not stop a server whose certificate still holds:
      // it serves that one, and renews at a later start.
      const current = certPem !== undefined && keyPem !== undefined && !expired(certPem, nowMs);
      if ((error as { code?: unknown }).code !== "ENOSPC" || !current) throw error;
      renewalPutOff =
        `airunner: warning: no space left in ${dir} to renew the TLS certificate (valid until ${
          new X509Certificate(certPem!).validTo
        }); serving the current one until a start with space free`;
    }
  }
  return {
    certPem: certPem!,
    keyPem: keyPem!,
    caPath: paths.ca,
    createdCa,
    ...(renewalPutOff === undefined ? {} : { renewalPutOff }),
  };
}

/**
 * Writes a key and its certificate as a pair: both to new files first,
 * then renamed over the old ones (a rename needs no space), so a disk that
 * fills midway leaves the old pair whole rather than a new key beside an
 * old certificate.
 */
async function replacePair(
  ...files: { readonly path: string; readonly text: string; readonly mode: number }[]
): Promise<void> {
  const staged: string[] = [];
  try {
    for (const file of files) {
      const next = `${file.path}.new`;
      staged.push(next);
      if (file.mode === 0o600) await writeSecret(next, file.text);
      else await Deno.writeTextFile(next, file.text, { mode: file.mode });
    }
  } catch (error) {
    for (const next of staged) await Deno.remove(next).catch(() => {});
    throw error;
  }
  for (const [i, file] of files.entries()) await Deno.rename(staged[i]!, file.path);
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Writes a private key readable by its owner only, whatever the umask. */
async function writeSecret(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
}

function commonNameOf(certPem: string): string {
  const subject = new X509Certificate(certPem).subject;
  const cn = /^CN=(.*)$/m.exec(subject)?.[1];
  if (cn === undefined) throw new Error("the CA certificate has no common name");
  return cn;
}

function expired(certPem: string, nowMs: number): boolean {
  try {
    return Date.parse(new X509Certificate(certPem).validTo) <= nowMs;
  } catch {
    return true;
  }
}

function expiresSoon(certPem: string, nowMs: number): boolean {
  try {
    return Date.parse(new X509Certificate(certPem).validTo) - nowMs < RENEW_BEFORE_MS;
  } catch {
    return true;
  }
}
