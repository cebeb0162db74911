/**
 * `airunner monitor JOB_ID`: watch one job. On a terminal, a header that
 * stays in place (id, queue, state, attempt, elapsed time, exit code) sits
 * above the live output, colours intact; elsewhere, one plain line per
 * lifecycle event, then the output. `--playback` replays a finished job at
 * its original pace. Ends when the job ends, with its exit code.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import type { Job, JobEvent } from "../../gen/job/v1/job_pb.ts";
import { EventType, JobState, StreamType } from "../../gen/job/v1/job_lite.ts";
import type { CliClients } from "../client/json_client.ts";
import { isFinished } from "../protocol/job_state.ts";
import { clientsFrom, type ExitCodeSink } from "./common_options.ts";
import { caCertOption, callTimeoutOption, serverOption, tokenOption } from "./commander_options.ts";
import { reportError } from "./errors.ts";
import { EventJsonEncoder } from "./event_json.ts";
import { EXIT_CODES_HELP } from "./exit_codes.ts";
import { followJobToOutcome } from "./follow_job.ts";
import { attemptSeparator } from "./attempt_format.ts";
import { describeLifecycleEvent, millis, outputChunks } from "./job_format.ts";
import { writeAll } from "./output.ts";
import { checkedJobId, jobStateName, parseInteger, UsageError } from "./parse.ts";
import {
  ansi,
  colourEnabled,
  formatElapsed,
  stdoutIsTerminal,
  styles,
  terminalSize,
} from "./terminal.ts";

/** Longest pause `--playback` keeps between two outputs. */
const PLAYBACK_MAX_GAP_MS = 5_000;

/** Builds the `monitor` command. */
export function monitorCommand(setExitCode: ExitCodeSink) {
  return new Command("monitor")
    .description(
      "watch one job: a header with its state above its live output; exits with its code",
    )
    .argument("<job-id>", "id of the job")
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caCertOption())
    .addOption(callTimeoutOption())
    .option("--from-sequence <n>", "start at this event sequence", "0")
    .option("--from-timestamp <time>", "start at this time (ISO 8601, or Unix milliseconds)")
    .option("--event-filter <types>", "only these event types, e.g. process_start,process_end")
    .option("--playback", "replay a finished job at its original pace", false)
    .option(
      "--json",
      "print each event as one JSON object a line (as logs --json), no header",
      false,
    )
    .addHelpText(
      "after",
      `\nExamples:\n  airunner monitor "$id"\n  airunner monitor "$id" --playback\n  airunner monitor "$id" --event-filter process_start,process_end\n\n${EXIT_CODES_HELP}`,
    )
    .action(async (jobId, opts) => {
      try {
        const id = checkedJobId(jobId);
        const fromSequence = BigInt(
          parseInteger(opts.fromSequence, "--from-sequence", 0, Number.MAX_SAFE_INTEGER),
        );
        const fromTimestampMs = opts.fromTimestamp === undefined
          ? 0
          : parseTime(opts.fromTimestamp);
        const eventTypes = opts.eventFilter === undefined ? [] : parseEventTypes(opts.eventFilter);
        const clients = await clientsFrom({ ...opts, callTimeout: opts.timeout });
        setExitCode(
          await runMonitor(clients, id, {
            fromSequence,
            fromTimestampMs,
            eventTypes,
            playback: opts.playback,
            json: opts.json,
          }),
        );
      } catch (error) {
        setExitCode(reportError(error, opts.server));
      }
    });
}

/** Parses `process_start,OUTPUT_BATCH,...` into event types. */
export function parseEventTypes(text: string): EventType[] {
  return text.split(",").map((raw) => {
    const name = raw.trim().toUpperCase().replace(/^EVENT_TYPE_/, "");
    const type = EventType[name as keyof typeof EventType];
    // A number ("5") names no type: the enum maps it back to a name.
    if (typeof type !== "number" || type === EventType.UNSPECIFIED) {
      const known = Object.keys(EventType).filter((k) => isNaN(Number(k)) && k !== "UNSPECIFIED");
      throw new UsageError(
        `--event-filter: "${raw}" is not an event type (${
          known.map((k) => k.toLowerCase()).join(", ")
        })`,
      );
    }
    return type;
  });
}

/** Parses an ISO 8601 time or Unix milliseconds. */
export function parseTime(text: string): number {
  const ms = /^\d+$/.test(text.trim()) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms)) {
    throw new UsageError(
      `--from-timestamp: "${text}" is not a time (ISO 8601 or Unix milliseconds)`,
    );
  }
  return ms;
}

interface MonitorOptions {
  readonly fromSequence: bigint;
  readonly fromTimestampMs: number;
  readonly eventTypes: EventType[];
  readonly playback: boolean;
  readonly json: boolean;
}

async function runMonitor(
  clients: CliClients,
  jobId: string,
  options: MonitorOptions,
): Promise<number> {
  const { job } = await clients.jobs.getJob({ jobId });
  if (job === undefined) throw new Error("the server returned no job");
  if (options.playback && !isFinished(job.state)) {
    throw new UsageError(
      "--playback replays finished jobs; this one is still " + jobStateName(job.state),
    );
  }
  const view = options.json
    ? new JsonView(jobId)
    : stdoutIsTerminal()
    ? new HeaderView(job)
    : new PlainView();
  const pace = options.playback ? new Pacer() : undefined;
  view.open();
  let exitCode: number;
  try {
    const outcome = await followJobToOutcome(clients, jobId, {
      fromSequence: options.fromSequence,
      fromTimestampMs: options.fromTimestampMs,
      eventTypes: options.eventTypes,
      onEvent: async (event) => {
        if (view instanceof JsonView) {
          await pace?.waitUntil(millis(event.timestamp) ?? 0);
          return view.event(event);
        }
        for (const chunk of outputChunks(event)) {
          await pace?.waitUntil(chunk.timeMs);
          await view.output(chunk.stream, chunk.bytes);
        }
        if (outputChunks(event).length === 0) {
          await pace?.waitUntil(millis(event.timestamp) ?? 0);
          await view.lifecycle(event);
        }
      },
      explainFailure: false,
    });
    exitCode = outcome.exitCode;
    if (outcome.job !== undefined) view.finished(outcome.job);
  } finally {
    view.close();
  }
  return exitCode;
}

/** Sleeps so that outputs appear as far apart as they were made (gaps capped). */
class Pacer {
  #lastEventMs: number | undefined;

  async waitUntil(eventMs: number): Promise<void> {
    if (this.#lastEventMs !== undefined && eventMs > this.#lastEventMs) {
      await new Promise((r) =>
        setTimeout(r, Math.min(PLAYBACK_MAX_GAP_MS, eventMs - this.#lastEventMs!))
      );
    }
    if (eventMs > 0) this.#lastEventMs = eventMs;
  }
}

interface View {
  open(): void;
  output(stream: StreamType, bytes: Uint8Array): Promise<void>;
  lifecycle(event: JobEvent): Promise<void>;
  finished(job: Job): void;
  close(): void;
}

const encoder = new TextEncoder();

/** Off a terminal: a plain line per lifecycle event; each starts on a line of its own. */
class PlainView implements View {
  #atLineStart = true;

  open(): void {}

  async output(stream: StreamType, bytes: Uint8Array): Promise<void> {
    await writeAll(stream === StreamType.STDERR ? Deno.stderr : Deno.stdout, bytes);
    if (stream !== StreamType.STDERR && bytes.byteLength > 0) {
      this.#atLineStart = bytes[bytes.byteLength - 1] === 0x0a;
    }
  }

  async lifecycle(event: JobEvent): Promise<void> {
    const line = describeLifecycleEvent(event);
    if (line === undefined) return;
    await writeAll(Deno.stdout, encoder.encode(`${this.#atLineStart ? "" : "\n"}${line}\n`));
    this.#atLineStart = true;
  }

  finished(): void {}

  close(): void {}
}

/** `--json`: every event as JSON lines on stdout (see event_json.ts); no header, no colours. */
class JsonView implements View {
  readonly #encoder: EventJsonEncoder;

  constructor(jobId: string) {
    this.#encoder = new EventJsonEncoder(jobId);
  }

  open(): void {}

  async event(event: JobEvent): Promise<void> {
    const text = this.#encoder.text(event);
    if (text !== "") await writeAll(Deno.stdout, encoder.encode(text));
  }

  async output(): Promise<void> {}

  async lifecycle(): Promise<void> {}

  finished(): void {}

  close(): void {}
}

/**
 * On a terminal: two header lines held in place by a scrolling region; the
 * output scrolls below them. The header is redrawn every second and on
 * every lifecycle event; closing restores the whole screen for scrolling.
 */
class HeaderView implements View {
  #job: Job;
  #startedMs: number | undefined;
  #endedMs: number | undefined;
  #exitCode: number | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #style = styles(colourEnabled());

  constructor(job: Job) {
    this.#job = job;
  }

  open(): void {
    const { rows } = terminalSize();
    this.#write(`${ansi.clearScreen}${ansi.scrollRegion(3, rows)}${ansi.moveTo(3, 1)}`);
    this.#drawHeader();
    this.#timer = setInterval(() => this.#drawHeader(), 1_000);
  }

  async output(stream: StreamType, bytes: Uint8Array): Promise<void> {
    await writeAll(stream === StreamType.STDERR ? Deno.stderr : Deno.stdout, bytes);
  }

  async lifecycle(event: JobEvent): Promise<void> {
    const data = event.eventData;
    if (data.case === "processStart") {
      this.#startedMs = millis(data.value.startedAt) ?? millis(event.timestamp);
      this.#endedMs = undefined;
      this.#exitCode = undefined;
      this.#job = { ...this.#job, state: JobState.RUNNING };
    } else if (data.case === "processEnd") {
      this.#endedMs = millis(event.timestamp);
      this.#exitCode = data.value.exitCode;
    } else if (data.case === "processError") {
      await writeAll(
        Deno.stdout,
        encoder.encode(`\r\n${this.#style.yellow(`▸ ${data.value.errorMessage}`)}\r\n`),
      );
    } else if (data.case === "attemptEnd") {
      // As `logs` and `submit --follow` print it: on stderr, between the attempts' output.
      await writeAll(Deno.stderr, encoder.encode(`\r\n${attemptSeparator(event)}\r\n`));
      this.#job = { ...this.#job, state: JobState.SCHEDULED, attempt: data.value.nextAttempt };
    }
    this.#drawHeader();
  }

  finished(job: Job): void {
    this.#job = job;
    this.#exitCode = job.result?.exitCode ?? this.#exitCode;
    this.#drawHeader();
  }

  close(): void {
    clearInterval(this.#timer);
    const { rows } = terminalSize();
    this.#write(`${ansi.resetScrollRegion}${ansi.moveTo(rows, 1)}\n`);
  }

  #drawHeader(): void {
    const job = this.#job;
    const { columns } = terminalSize();
    const elapsed = this.#startedMs === undefined
      ? "-"
      : formatElapsed((this.#endedMs ?? Date.now()) - this.#startedMs);
    const state = jobStateName(job.state);
    const colouredState = job.state === JobState.COMPLETED
      ? this.#style.green(state)
      : job.state === JobState.FAILED || job.state === JobState.CANCELLED
      ? this.#style.red(state)
      : this.#style.yellow(state);
    // A schedule's job says which schedule made it; a priority shows when not the default.
    const schedule = job.jobParams?.metadata.schedule;
    const priority = job.jobParams?.priority ?? 0;
    const extra = `${schedule === undefined ? "" : `  schedule ${schedule}`}${
      priority === 0 ? "" : `  priority ${priority}`
    }`;
    const header = `${
      this.#style.bold(`job ${job.jobId}`)
    }  queue ${job.queue}${extra}  ${colouredState}  attempt ${job.attempt}  elapsed ${elapsed}  exit ${
      this.#exitCode ?? "-"
    }`;
    this.#write(
      `${ansi.saveCursor}${ansi.moveTo(1, 1)}${ansi.clearLine}${header}${
        ansi.moveTo(2, 1)
      }${ansi.clearLine}${this.#style.dim("─".repeat(Math.max(10, columns)))}${ansi.restoreCursor}`,
    );
  }

  #write(text: string): void {
    Deno.stdout.writeSync(encoder.encode(text));
  }
}
