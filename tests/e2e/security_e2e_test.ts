/**
 * The security of the real `airunner` processes: keys made by `token keygen`,
 * tokens minted by `token`, a server that refuses to start open, and HTTPS
 * (auto and explicit certificates) end to end with a worker and
 * `submit --follow`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createCertificateAuthority, issueServerCertificate } from "../../src/auth/certificates.ts";
import {
  type AirunnerProcess,
  freePort,
  runAirunner,
  startAirunner,
} from "../support/airunner_process.ts";

interface Keys {
  readonly dir: string;
  readonly privatePath: string;
  readonly publicPath: string;
}

async function keygen(): Promise<Keys> {
  const dir = await Deno.makeTempDir({ prefix: "airunner-keys-" });
  const out = join(dir, "keys");
  const result = await runAirunner(["token", "keygen", "--out", out]);
  assert.equal(result.code, 0, result.stderr);
  return { dir, privatePath: join(out, "private.pem"), publicPath: join(out, "public.pem") };
}

async function mint(keys: Keys, subject: string, scope: string): Promise<string> {
  const result = await runAirunner([
    "token",
    "--signing-key",
    keys.privatePath,
    "--subject",
    subject,
    "--scope",
    scope,
    "--ttl",
    "10m",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const token = result.stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  return token;
}

/** Waits until `url/health` answers over TLS trusted through `caPem`. */
async function waitForHttpsHealth(url: string, caPem: string, timeoutMs = 20_000) {
  const client = Deno.createHttpClient({ caCerts: [caPem] });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        const response = await fetch(`${url}/health`, { client });
        await response.body?.cancel();
        if (response.ok) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`${url} did not become healthy`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    client.close();
  }
}

/** Runs a job through `worker` with `submit --follow` and checks output and exit code. */
async function assertJobRunsEndToEnd(url: string, env: Record<string, string>) {
  const result = await runAirunner(
    [
      "submit",
      "--server",
      url,
      "--env",
      "API_KEY=s3cr3t-value",
      "--follow",
      "--",
      "sh",
      "-c",
      'echo "over tls: ${#API_KEY} chars"; exit 3',
    ],
    { env },
  );
  assert.equal(result.stdout, "over tls: 12 chars\n", result.stderr);
  assert.equal(result.code, 3, result.stderr);
}

async function stopAll(...processes: AirunnerProcess[]) {
  return await Promise.all(processes.map((p) => p.stop()));
}

Deno.test("server refuses to start without a public key, naming --jwt-public-key and --no-auth", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "airunner-closed-" });
  try {
    const result = await runAirunner([
      "server",
      "--listen",
      `127.0.0.1:${freePort()}`,
      "--data-dir",
      dataDir,
    ], { env: { JWT_PUBLIC_KEY: "" } });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^airunner: error: --jwt-public-key: required/);
    assert.match(result.stderr, /--no-auth/);
    assert.deepEqual([...Deno.readDirSync(dataDir)], [], "nothing was created");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("token keygen writes a 0600 private key and refuses to overwrite it", async () => {
  const keys = await keygen();
  try {
    assert.equal((await Deno.stat(keys.privatePath)).mode! & 0o777, 0o600);
    assert.match(await Deno.readTextFile(keys.publicPath), /^-----BEGIN PUBLIC KEY-----/);
    const again = await runAirunner(["token", "keygen", "--out", join(keys.dir, "keys")]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /airunner: error: .*private\.pem.*exists/);
    const badScope = await runAirunner([
      "token",
      "--signing-key",
      keys.privatePath,
      "--subject",
      "x",
      "--scope",
      "root",
    ]);
    assert.equal(badScope.code, 2);
    assert.match(badScope.stderr, /--scope.*submit, worker, admin/);
  } finally {
    await Deno.remove(keys.dir, { recursive: true });
  }
});

Deno.test("--tls auto: worker and submit --follow work over HTTPS with scoped tokens", async () => {
  const keys = await keygen();
  const dataDir = join(keys.dir, "data");
  const port = freePort();
  const url = `https://127.0.0.1:${port}`;
  const server = startAirunner([
    "server",
    "--listen",
    `127.0.0.1:${port}`,
    "--data-dir",
    dataDir,
    "--jwt-public-key",
    keys.publicPath,
    "--tls",
    "auto",
    "--log-level",
    "debug",
  ]);
  let worker: AirunnerProcess | undefined;
  try {
    const caPath = join(dataDir, "tls", "ca.pem");
    await waitForHttpsHealth(url, await waitForFile(caPath));
    const workerToken = await mint(keys, "worker-1", "worker");
    const submitToken = await mint(keys, "ci", "submit");
    worker = startAirunner(["worker", "--server", url, "--log-level", "debug"], {
      env: { AIRUNNER_TOKEN: workerToken, AIRUNNER_CA_CERT: caPath },
    });
    await assertJobRunsEndToEnd(url, { AIRUNNER_TOKEN: submitToken, AIRUNNER_CA_CERT: caPath });

    const untrusted = await runAirunner(["list", "--server", url, "--token", submitToken]);
    assert.equal(untrusted.code, 125);
    assert.match(untrusted.stderr, /cannot trust the TLS certificate.*--ca-cert/);

    const wrongScope = await runAirunner(
      ["submit", "--server", url, "--ca-cert", caPath, "--", "true"],
      { env: { AIRUNNER_TOKEN: workerToken } },
    );
    assert.equal(wrongScope.code, 1);
    assert.match(wrongScope.stderr, /"worker-1" has scope worker; EnqueueJob needs submit/);

    const anonymous = await runAirunner(["list", "--server", url, "--ca-cert", caPath]);
    assert.equal(anonymous.code, 125);
    assert.match(anonymous.stderr, /missing bearer token.*\(unauthenticated\)/);

    const [serverExit, workerExit] = await stopAll(server, worker);
    for (const { stderr } of [serverExit!, workerExit!]) {
      for (const secret of [workerToken, submitToken, "s3cr3t-value"]) {
        assert.ok(!stderr.includes(secret), "a secret reached the log");
      }
    }
    assert.match(serverExit!.stderr, /clients trust it with --ca-cert .*ca\.pem/);
    assert.match(workerExit!.stderr, /job finished/, "the worker logged at debug");
  } finally {
    await stopAll(server, ...(worker === undefined ? [] : [worker]));
    await Deno.remove(keys.dir, { recursive: true });
  }
});

Deno.test("--tls-cert/--tls-key: a certificate from your own CA works end to end", async () => {
  const keys = await keygen();
  const now = Date.now();
  const { ca, certPem: caPem } = await createCertificateAuthority("test CA", now, 2);
  const leaf = await issueServerCertificate(
    ca,
    { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] },
    now,
    1,
  );
  const paths = {
    ca: join(keys.dir, "ca.pem"),
    cert: join(keys.dir, "server.pem"),
    key: join(keys.dir, "server-key.pem"),
  };
  await Deno.writeTextFile(paths.ca, caPem);
  await Deno.writeTextFile(paths.cert, leaf.certPem);
  await Deno.writeTextFile(paths.key, leaf.keyPem, { mode: 0o600 });
  const port = freePort();
  const url = `https://localhost:${port}`;
  const server = startAirunner([
    "server",
    "--listen",
    `127.0.0.1:${port}`,
    "--store",
    "memory",
    "--tls-cert",
    paths.cert,
    "--tls-key",
    paths.key,
  ], { env: { JWT_PUBLIC_KEY: await Deno.readTextFile(keys.publicPath) } });
  let worker: AirunnerProcess | undefined;
  try {
    await waitForHttpsHealth(url, caPem);
    const adminToken = await mint(keys, "ops", "admin");
    worker = startAirunner(["worker", "--server", url, "--ca-cert", paths.ca], {
      env: { AIRUNNER_TOKEN: adminToken },
    });
    await assertJobRunsEndToEnd(url, { AIRUNNER_TOKEN: adminToken, AIRUNNER_CA_CERT: paths.ca });
  } finally {
    await stopAll(server, ...(worker === undefined ? [] : [worker]));
    await Deno.remove(keys.dir, { recursive: true });
  }
});

async function waitForFile(path: string, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const text = await Deno.readTextFile(path);
      if (text.includes("-----END CERTIFICATE-----")) return text;
    } catch {
      // Not written yet.
    }
    if (Date.now() > deadline) throw new Error(`${path} was not written`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
