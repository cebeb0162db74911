/**
 * Subcommands that later releases complete. Each fails loudly, never with
 * a silent success.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import type { ExitCodeSink } from "./common_options.ts";
import { NotAvailableError, reportError } from "./errors.ts";

/** Builds `orchestrator`, the server on AWS SQS + DynamoDB. */
export function orchestratorCommand(setExitCode: ExitCodeSink) {
  return new Command("orchestrator")
    .description(
      "serve the API on AWS SQS + DynamoDB (not available yet: arrives with the AWS backend)",
    )
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() =>
      setExitCode(reportError(new NotAvailableError("orchestrator", "the AWS backend")))
    );
}
