/**
 * `airunner logs JOB_ID`: a job's output, stdout to stdout and stderr to
 * stderr, byte for byte. `-f` follows it until the job ends and exits with
 * the job's exit code.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { rpcErrorOf } from "../rpc_error.ts";
import { EventType } from "../../gen/job/v1/job_pb.ts";
import type { CliClients } from "../client/json_client.ts";
import { isFinished } from "../protocol/job_state.ts";
import { clientsFrom, type ExitCodeSink } from "./common_options.ts";
import { caCertOption, callTimeoutOption, serverOption, tokenOption } from "./commander_options.ts";
import { reportError } from "./errors.ts";
import { EXIT_CODES_HELP } from "./exit_codes.ts";
import { followJobToOutcome } from "./follow_job.ts";
import { checkedJobId } from "./parse.ts";
import { writeOutput } from "./output.ts";
import { parseDurationMs, parseInteger } from "./parse.ts";

/** How long a running job's replay may pause before `logs` (without -f) stops reading. */
const QUIET_MS = 300;

/** Builds the `logs` command. */
export function logsCommand(setExitCode: ExitCodeSink) {
  return new Command("logs")
    .description("print a job's output (-f: follow it until the job ends, then exit with its code)")
    .argument("<job-id>", "id of the job")
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caCertOption())
    .addOption(callTimeoutOption())
    .option("-f, --follow", "follow the output until the job ends", false)
    .option("--from-sequence <n>", "start at this event sequence", "0")
    .option("--since <duration>", "only output from the last DURATION (e.g. 10m)")
    .addHelpText(
      "after",
      `\nExamples:\n  airunner logs "$id" > build.log 2> build.err\n  airunner logs -f "$id"\n\n${EXIT_CODES_HELP}`,
    )
    .action(async (jobId, opts) => {
      try {
        const id = checkedJobId(jobId);
        const fromSequence = BigInt(
          parseInteger(opts.fromSequence, "--from-sequence", 0, Number.MAX_SAFE_INTEGER),
        );
        const fromTimestampMs = opts.since === undefined
          ? 0
          : Date.now() - parseDurationMs(opts.since, "--since");
        const clients = await clientsFrom({ ...opts, callTimeout: opts.timeout });
        if (opts.follow) {
          const outcome = await followJobToOutcome(clients, id, {
            fromSequence,
            fromTimestampMs,
            eventTypes: OUTPUT_TYPES,
            onEvent: (e) => writeOutput(e),
            explainFailure: true,
          });
          setExitCode(outcome.exitCode);
        } else {
          await printSoFar(clients, id, fromSequence, fromTimestampMs);
          setExitCode(0);
        }
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}

const OUTPUT_TYPES = [EventType.OUTPUT_BATCH, EventType.OUTPUT];

/**
 * Prints the output stored so far. A finished job's stream ends by itself;
 * a running job's replay is read until it pauses.
 */
async function printSoFar(
  clients: CliClients,
  jobId: string,
  fromSequence: bigint,
  fromTimestampMs: number,
): Promise<void> {
  const { job } = await clients.jobs.getJob({ jobId });
  const finished = job !== undefined && isFinished(job.state);
  const stop = new AbortController();
  let quiet: ReturnType<typeof setTimeout> | undefined;
  const armQuiet = () => {
    if (finished) return;
    clearTimeout(quiet);
    quiet = setTimeout(() => stop.abort(), QUIET_MS);
  };
  armQuiet();
  try {
    const stream = clients.events.streamJobEvents(
      { jobId, fromSequence, fromTimestamp: BigInt(fromTimestampMs), eventFilter: OUTPUT_TYPES },
      { signal: stop.signal },
    );
    for await (const { event } of stream) {
      armQuiet();
      if (event !== undefined) await writeOutput(event);
    }
  } catch (error) {
    if (!(stop.signal.aborted && rpcErrorOf(error) !== undefined)) throw error;
  } finally {
    clearTimeout(quiet);
  }
}
