import assert from "node:assert/strict";
import { join } from "node:path";
import { generateP256KeyPair, publicKeyToPem } from "../../src/auth/keys.ts";
import { resolveSecurity } from "../../src/cli/security_options.ts";
import { UsageError } from "../../src/cli/parse.ts";

const publicPem = await publicKeyToPem((await generateP256KeyPair()).publicKey);
const context = { hostname: "127.0.0.1", dataDir: "/nonexistent" };

Deno.test("no key and no --no-auth: refused, naming both ways out", async () => {
  await assert.rejects(
    resolveSecurity({ auth: true }, context),
    (e: unknown) =>
      e instanceof UsageError && /--jwt-public-key: required/.test(e.message) &&
      /airunner token keygen/.test(e.message) && /--no-auth/.test(e.message),
  );
  await assert.rejects(resolveSecurity({ auth: true, jwtPublicKey: "" }, context), /required/);
});

Deno.test("--no-auth warns, loudly when the address is not loopback", async () => {
  const local = await resolveSecurity({ auth: false }, context);
  assert.equal(local.auth, undefined);
  assert.match(local.notices.join("\n"), /warning: --no-auth: every caller on this host/);
  const open = await resolveSecurity({ auth: false }, { ...context, hostname: "0.0.0.0" });
  assert.match(open.notices.join("\n"), /WARNING: --no-auth on 0\.0\.0\.0: ANYONE who can reach/);
});

Deno.test("a public key, as PEM text or as a file, turns authentication on", async () => {
  const fromText = await resolveSecurity({ auth: true, jwtPublicKey: publicPem }, context);
  assert.ok(fromText.auth !== undefined);
  assert.deepEqual(fromText.notices, []);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "public.pem"), publicPem);
    const fromFile = await resolveSecurity(
      { auth: true, jwtPublicKey: join(dir, "public.pem") },
      context,
    );
    assert.ok(fromFile.auth !== undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("contradictory or incomplete security flags are usage errors", async () => {
  await assert.rejects(
    resolveSecurity({ auth: false, jwtPublicKey: publicPem }, context),
    /--no-auth: conflicts with --jwt-public-key/,
  );
  await assert.rejects(
    resolveSecurity({ auth: false, tls: "auto", tlsCert: "c.pem", tlsKey: "k.pem" }, context),
    /--tls auto: conflicts with --tls-cert/,
  );
  await assert.rejects(
    resolveSecurity({ auth: false, tlsCert: "c.pem" }, context),
    /--tls-cert and --tls-key: give both/,
  );
  await assert.rejects(
    resolveSecurity(
      { auth: false, tlsCert: "/nonexistent/c.pem", tlsKey: "/nonexistent/k.pem" },
      context,
    ),
    /--tls-cert: cannot read \/nonexistent\/c\.pem/,
  );
  await assert.rejects(
    resolveSecurity({ auth: true, jwtPublicKey: "/nonexistent/public.pem" }, context),
    /--jwt-public-key: cannot read/,
  );
});
