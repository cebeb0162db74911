/**
 * `deno task gen`: regenerates gen/ from proto/ with buf and protoc-gen-es
 * (both run locally through Deno). gen/ is committed and never edited by hand.
 *
 * @module
 */
import { runBuf } from "./buf.ts";

const root = new URL("..", import.meta.url).pathname;
await Deno.remove(`${root}gen`, { recursive: true }).catch(() => {});
const { code } = await runBuf(["generate"], { inherit: true, cwd: root });
if (code !== 0) {
  console.error("gen: buf generate failed");
  Deno.exit(code);
}
console.error("gen: regenerated gen/ from proto/");
