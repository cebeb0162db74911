/**
 * scripts/install.sh against a release served on 127.0.0.1: it picks this
 * machine's binary, checks its checksum, and installs it; a wrong checksum
 * installs nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { binaryName } from "../../scripts/compile.ts";
import { VERSION } from "../../src/version.ts";

const INSTALL_SH = new URL("../../scripts/install.sh", import.meta.url).pathname;

function thisTarget(): string {
  const arch = Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
  return Deno.build.os === "darwin" ? `${arch}-apple-darwin` : `${arch}-unknown-linux-gnu`;
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function withRelease(
  sums: (file: string, hash: string) => string,
  run: (url: string) => Promise<void>,
) {
  const file = binaryName(thisTarget());
  const binary = new TextEncoder().encode(`#!/bin/sh\necho "${VERSION} (fake release)"\n`);
  const files: Record<string, Uint8Array<ArrayBuffer>> = {
    [`/v${VERSION}/${file}`]: binary,
    [`/v${VERSION}/SHA256SUMS`]: new TextEncoder().encode(sums(file, await sha256Hex(binary))),
  };
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const body = files[new URL(req.url).pathname];
    return body === undefined ? new Response("not found", { status: 404 }) : new Response(body);
  });
  await run(`http://127.0.0.1:${server.addr.port}`);
}

async function install(url: string, installDir: string) {
  const out = await new Deno.Command("sh", {
    args: [INSTALL_SH],
    env: { AIRUNNER_DOWNLOAD_URL: url, INSTALL_DIR: installDir, HOME: installDir },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("install.sh downloads this machine's binary, checks it and puts it in INSTALL_DIR", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-install-" });
  try {
    await withRelease(
      (file, hash) => `${"0".repeat(64)}  other-file\n${hash}  ${file}\n`,
      async (url) => {
        const result = await install(url, join(dir, "bin"));
        assert.equal(result.code, 0, result.stderr);
        const installed = join(dir, "bin", "airunner");
        assert.equal((await Deno.stat(installed)).mode! & 0o111, 0o111, "executable");
        const version = await new Deno.Command(installed, { args: ["--version"], stdout: "piped" })
          .output();
        assert.match(new TextDecoder().decode(version.stdout), new RegExp(`^${VERSION}`));
        assert.match(result.stderr, /add .*bin to your PATH/);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("install.sh installs nothing when the checksum does not match", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airunner-install-" });
  try {
    await withRelease((file) => `${"ab".repeat(32)}  ${file}\n`, async (url) => {
      const result = await install(url, join(dir, "bin"));
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /install: error: checksum mismatch for airunner-.*; nothing installed/,
      );
      await assert.rejects(Deno.stat(join(dir, "bin", "airunner")), Deno.errors.NotFound);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
