/**
 * `deno task gen`: regenerates gen/ from proto/ with buf and protoc-gen-es
 * (both run locally through Deno), then gen/job/v1/job_lite.ts from its
 * descriptors (scripts/gen_lite.ts). gen/ is committed and never edited by hand.
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
// The lite schema reads job_pb.ts's descriptors, so it runs once they exist.
const lite = await new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", `${root}scripts/gen_lite.ts`],
  cwd: root,
}).output();
if (!lite.success) {
  console.error(`gen: gen_lite failed\n${new TextDecoder().decode(lite.stderr)}`);
  Deno.exit(1);
}
console.error("gen: regenerated gen/ from proto/");
