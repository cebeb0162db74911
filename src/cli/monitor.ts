/**
 * `airunner monitor JOB_ID`: print a job's events as they arrive and exit
 * with the job's exit code once it ends.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { type JobEvent, StreamType } from "../../gen/job/v1/job_pb.ts";
import { createAirunnerClients } from "../client/transport.ts";
import { validateJobId } from "../server/request_validation.ts";
import { type ExitCodeSink, serverOption } from "./common_options.ts";
import { reportError } from "./errors.ts";
import { followJobToExitCode } from "./follow_job.ts";
import { describeLifecycleEvent, outputChunks } from "./job_format.ts";
import { writeAll } from "./output.ts";
import { parseInteger, usageChecked } from "./parse.ts";

/** Builds the `monitor` command. */
export function monitorCommand(setExitCode: ExitCodeSink) {
  return new Command("monitor")
    .description("print a job's events as they happen; exits with the job's exit code")
    .argument("<job-id>", "id of the job")
    .addOption(serverOption())
    .option("--from-sequence <n>", "start at this event sequence", "0")
    .addHelpText("after", "\nExample:\n  airunner monitor 0193c3a1-7c2e-7d10-9a1e-5b3c2d1e0f00")
    .action(async (jobId, opts) => {
      try {
        const id = checkedJobId(jobId);
        const from = BigInt(
          parseInteger(opts.fromSequence, "--from-sequence", 0, Number.MAX_SAFE_INTEGER),
        );
        const clients = createAirunnerClients({ serverUrl: opts.server });
        const printer = new EventPrinter();
        setExitCode(
          await followJobToExitCode(clients, id, {
            fromSequence: from,
            onEvent: (event) => printer.print(event),
            explainFailure: false,
          }),
        );
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}

/** Checks a job id given on the command line. */
export function checkedJobId(jobId: string): string {
  return usageChecked(() => validateJobId(jobId, "JOB_ID"));
}

/**
 * Prints lifecycle events as lines on stdout and output as it came (stderr
 * output to stderr); a lifecycle line always starts on a line of its own.
 */
class EventPrinter {
  #atLineStart = true;

  async print(event: JobEvent): Promise<void> {
    const line = describeLifecycleEvent(event);
    if (line !== undefined) {
      await writeAll(Deno.stdout, encoder.encode(`${this.#atLineStart ? "" : "\n"}${line}\n`));
      this.#atLineStart = true;
      return;
    }
    for (const { stream, bytes } of outputChunks(event)) {
      await writeAll(stream === StreamType.STDERR ? Deno.stderr : Deno.stdout, bytes);
      if (stream !== StreamType.STDERR && bytes.byteLength > 0) {
        this.#atLineStart = bytes[bytes.byteLength - 1] === 0x0a;
      }
    }
  }
}

const encoder = new TextEncoder();
