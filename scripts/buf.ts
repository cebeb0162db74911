/**
 * Runs the buf CLI pinned in deno.json's import map, through Deno (no
 * Node.js needed). `deno run -A scripts/buf.ts lint` works like `buf lint`.
 *
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };

/** The `npm:` specifier of the pinned buf package. */
export const BUF_SPECIFIER: string = denoConfig.imports["@bufbuild/buf"];

/** Runs buf with `args` in `cwd`; returns its exit code and output. */
export async function runBuf(
  args: string[],
  options: { cwd?: string; inherit?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", BUF_SPECIFIER, ...args],
    cwd: options.cwd ?? new URL("..", import.meta.url).pathname,
    stdout: options.inherit ? "inherit" : "piped",
    stderr: options.inherit ? "inherit" : "piped",
  }).output();
  const text = (b: Uint8Array | null) => b === null ? "" : new TextDecoder().decode(b);
  return {
    code: output.code,
    stdout: options.inherit ? "" : text(output.stdout),
    stderr: options.inherit ? "" : text(output.stderr),
  };
}

if (import.meta.main) {
  const { code } = await runBuf(Deno.args, { inherit: true, cwd: Deno.cwd() });
  Deno.exit(code);
}
