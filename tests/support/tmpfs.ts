/**
 * A small tmpfs, mounted for one test: a real filesystem that fills up, so
 * a full disk is tested as SQLite and the OS really report it (SQLITE_FULL,
 * SQLITE_IOERR_SHMSIZE, ENOSPC), not as a simulation. Mounting needs root
 * (CI runs as root); {@link tmpfsUnavailable} says why not otherwise, for
 * the test's `ignore`.
 *
 * @module
 */

async function run(command: string, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  const out = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" }).output()
    .catch((error: Error) => ({ success: false, stderr: new TextEncoder().encode(error.message) }));
  return { ok: out.success, stderr: new TextDecoder().decode(out.stderr).trim() };
}

/** Why no tmpfs can be mounted here (undefined when one can); tried once, by mounting one. */
export async function tmpfsUnavailable(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "tmpfs mounts need Linux";
  const dir = await Deno.makeTempDir({ prefix: "airunner-tmpfs-probe-" });
  try {
    const mounted = await run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]);
    if (!mounted.ok) return `cannot mount a tmpfs (needs root): ${mounted.stderr}`;
    await run("umount", [dir]);
    return undefined;
  } finally {
    await Deno.remove(dir);
  }
}

/** A mounted tmpfs of a fixed size, unmounted (and its mount point removed) by disposing it. */
export interface Tmpfs extends AsyncDisposable {
  /** The mount point. */
  readonly dir: string;
  /** Fills the filesystem with a filler file until at most `leaveBytes` are free. */
  fill(leaveBytes?: number): Promise<void>;
  /** Removes the filler file: the space is free again. */
  free(): Promise<void>;
  /** Bytes free now. */
  freeBytes(): number;
}

const CHUNK = 64 * 1024;

/** Mounts a tmpfs of `sizeBytes` (rounded to 4 KiB pages) on a new temporary directory. */
export async function mountTmpfs(sizeBytes: number): Promise<Tmpfs> {
  const dir = await Deno.makeTempDir({ prefix: "airunner-tmpfs-" });
  const mounted = await run("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes}`, "tmpfs", dir]);
  if (!mounted.ok) {
    await Deno.remove(dir);
    throw new Error(`mount tmpfs on ${dir}: ${mounted.stderr}`);
  }
  const filler = `${dir}/filler`;
  const { statfsSync } = await import("node:fs");
  const freeBytes = () => {
    const stats = statfsSync(dir);
    return Number(stats.bavail) * Number(stats.bsize);
  };
  return {
    dir,
    freeBytes,
    async fill(leaveBytes = 0) {
      await using file = await Deno.open(filler, { create: true, append: true });
      const zeros = new Uint8Array(CHUNK);
      // Bounded: the filesystem holds at most sizeBytes.
      for (let i = 0; i <= sizeBytes / 4096 + 16 && freeBytes() > leaveBytes; i++) {
        const room = freeBytes() - leaveBytes;
        const bytes = zeros.subarray(0, Math.max(1, Math.min(CHUNK, room)));
        try {
          await file.write(bytes);
        } catch (error) {
          if ((error as { code?: string }).code === "ENOSPC") return;
          throw error;
        }
      }
    },
    async free() {
      await Deno.remove(filler).catch(() => {});
    },
    async [Symbol.asyncDispose]() {
      let unmounted = await run("umount", [dir]);
      // Something still holds a file open (a test that failed midway): detach it anyway.
      if (!unmounted.ok) unmounted = await run("umount", ["-l", dir]);
      if (!unmounted.ok) throw new Error(`umount ${dir}: ${unmounted.stderr}`);
      await Deno.remove(dir, { recursive: true });
    },
  };
}
