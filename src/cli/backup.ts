/**
 * `airunner backup`: a consistent copy of a server's sqlite store, taken
 * while the server runs.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { join } from "node:path";
import { backupDatabase } from "../store/sqlite/backup.ts";
import type { ExitCodeSink } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { dataDirOption, serverDataDirDefault } from "./store_options.ts";

/** Builds the `backup` command. */
export function backupCommand(setExitCode: ExitCodeSink) {
  return new Command("backup")
    .description("copy a sqlite store consistently, while its server runs")
    .addOption(dataDirOption(serverDataDirDefault()))
    .requiredOption("--out <file>", "the new file to write the copy to")
    .addHelpText(
      "after",
      "\nExample:\n  airunner backup --data-dir /var/lib/airunner --out airunner-$(date +%F).db\n\nRestore: stop the server, put the copy in place as DATA_DIR/airunner.db, start it.",
    )
    .action(async (opts) => {
      try {
        await backupDatabase(join(opts.dataDir, "airunner.db"), opts.out);
        console.error(`airunner: backed up ${join(opts.dataDir, "airunner.db")} to ${opts.out}`);
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error));
      }
    });
}
