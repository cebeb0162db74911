/**
 * `--tls auto` on a full disk (a real 4 MiB tmpfs, filled): a server
 * certificate due for renewal that cannot be written is kept, whole, with
 * its key, and the server says so, instead of failing to start (or leaving
 * a truncated key behind).
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { ensureAutoTls } from "../../src/auth/auto_tls.ts";
import { mountTmpfs, tmpfsUnavailable } from "../support/tmpfs.ts";

const noTmpfs = await tmpfsUnavailable();
if (noTmpfs !== undefined) console.warn(`auto TLS full-disk test skipped: ${noTmpfs}`);

Deno.test({
  name: "a TLS renewal with no space to write it keeps the current pair and says why",
  ignore: noTmpfs !== undefined,
  async fn() {
    await using disk = await mountTmpfs(4 * 1024 * 1024);
    const dataDir = join(disk.dir, "data");
    const now = Date.UTC(2026, 0, 1);
    const made = await ensureAutoTls(dataDir, now);
    const validTo = Date.parse(new X509Certificate(made.certPem).validTo);
    await disk.fill();
    const dueForRenewal = validTo - 10 * 24 * 3600 * 1000;
    const kept = await ensureAutoTls(dataDir, dueForRenewal);
    assert.equal(kept.certPem, made.certPem);
    assert.equal(kept.keyPem, made.keyPem);
    assert.equal(await Deno.readTextFile(join(dataDir, "tls", "server-key.pem")), made.keyPem);
    assert.match(kept.renewalPutOff ?? "", /no space left in .* to renew the TLS certificate/);
    assert.deepEqual(
      [...Deno.readDirSync(join(dataDir, "tls"))].map((e) => e.name).sort(),
      ["ca-key.pem", "ca.pem", "server-key.pem", "server.pem"],
    );
    // Once there is space, the next start renews.
    await disk.free();
    const renewed = await ensureAutoTls(dataDir, dueForRenewal);
    assert.notEqual(renewed.certPem, made.certPem);
    assert.equal(renewed.renewalPutOff, undefined);
  },
});
