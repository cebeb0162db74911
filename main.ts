/**
 * airunner: a job queue server, workers and a scriptable CLI in one binary.
 * Run `airunner --help` for the commands.
 *
 * @module
 */
import { runCli } from "./src/cli/program.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
