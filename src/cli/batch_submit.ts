/**
 * `airunner submit --batch FILE`: many jobs from JSON lines, sent with
 * EnqueueJobs in chunks.
 *
 * A batch file holds one job a line, a JSON object with the keys of a
 * `--config` job file plus `request_id` (or `requestId`); blank lines and
 * lines starting with `#` are skipped:
 *
 * ```text
 * # shards of the nightly test run
 * {"command": "./test.sh", "args": ["1"], "request_id": "nightly-1"}
 * {"command": "./test.sh", "args": ["2"], "queue": "big", "timeout": "1h"}
 * ```
 *
 * The flags `--queue`, `--owner`, `--env`, `--secret-env`, `--env-file`,
 * `--metadata`, `--timeout`, `--process-type`, `--workdir`, `--branch`,
 * `--commit`, the retry and start flags and the REPOSITORY argument are defaults: a line's own key wins,
 * `environment`, `secret_env` and `metadata` key by key. The whole file is checked before anything is sent;
 * a line without a request id gets a random one, so a chunk retried after
 * Unavailable or DeadlineExceeded cannot enqueue a job twice.
 *
 * @module
 */
import { type DependencyFlags, dependencySpecOf } from "./dependency_flags.ts";
import { retryPolicyOf } from "./retry_flags.ts";
import { create } from "@bufbuild/protobuf";
import type { Code } from "@connectrpc/connect";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { jsonByteLength } from "../protocol/json_codec.ts";
import {
  type EnqueueJobRequest,
  EnqueueJobRequestSchema,
  type EnqueueJobsResult,
} from "../../gen/job/v1/job_pb.ts";
import type { CliClients } from "../client/json_client.ts";
import {
  InvalidArgumentError,
  validateJobParams,
  validateQueueName,
  validateRequestId,
} from "../protocol/request_validation.ts";
import {
  currentTraceparent,
  inSpan,
  SpanKind,
  TRACEPARENT_METADATA_KEY,
} from "../telemetry/tracing.ts";
import { describeError } from "./errors.ts";
import { ExitCode } from "./exit_codes.ts";
import { checkJobFields, parseTimeoutFlag } from "./job_fields.ts";
import {
  backoffDelayMs,
  type BackoffPolicy,
  isTransient,
  retry,
  transientCodes,
} from "../retry.ts";
import {
  checkedCheckoutFlags,
  jobParamsOf,
  type JobSpec,
  mergeJobSpecs,
  type RetryFlags,
  retrySpecOf,
  type StartFlags,
  startSpecOf,
} from "./job_spec.ts";
import { parseKeyValues, parseSecretEnvEntries, usageChecked, UsageError } from "./parse.ts";
import { checkStartTime } from "./start_flags.ts";

/** Jobs per EnqueueJobs call (the server takes up to MAX_ENQUEUE_BATCH). */
export const JOBS_PER_CALL = 500;
/** Request bytes per call as the CLI sends them (JSON), well under the server's MAX_MESSAGE_BYTES. */
export const BYTES_PER_CALL = 4 * 1024 * 1024;
/** Tries of one chunk (the first call and its retries). */
export const ATTEMPTS_PER_CHUNK = 4;

/**
 * What every line starts from: the command line's flags, `--env-file` and
 * environment (the line's own keys win, see job_spec.ts).
 */
export interface BatchDefaults extends JobSpec {
  readonly owner: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly secretEnvironment: Readonly<Record<string, string>>;
  readonly metadata: Readonly<Record<string, string>>;
}

/** The `submit` flags `--batch` reads or refuses. */
export interface BatchFlags extends RetryFlags, StartFlags, DependencyFlags {
  readonly queue?: string;
  readonly command?: string;
  readonly arg: readonly string[];
  readonly env: readonly string[];
  readonly secretEnv: readonly string[];
  readonly metadata: readonly string[];
  readonly owner?: string;
  readonly workdir?: string;
  readonly timeout?: string;
  readonly processType?: "pipe" | "pty";
  readonly requestId?: string;
  readonly branch?: string;
  readonly commit?: string;
  readonly config?: string;
  readonly follow: boolean;
  readonly wait: boolean;
  readonly cancelOnInterrupt: boolean;
}

/** One line of a batch file, ready to send. */
export interface BatchJob {
  /** Its line number in the file (from 1). */
  readonly line: number;
  readonly request: EnqueueJobRequest;
}

/** What became of one line. */
export type BatchOutcome =
  | { readonly line: number; readonly ok: true; readonly jobId: string; readonly created: boolean }
  | { readonly line: number; readonly ok: false; readonly code: Code; readonly message: string };

/** Refuses flags that make no sense with `--batch`, naming them all. */
export function checkBatchFlags(opts: BatchFlags, trailing: readonly string[] | undefined): void {
  const refused = [
    trailing !== undefined && trailing.length > 0 ? "a command after --" : undefined,
    opts.command !== undefined ? "--command" : undefined,
    opts.arg.length > 0 ? "--arg" : undefined,
    opts.requestId !== undefined ? "--request-id" : undefined,
    opts.config !== undefined ? "--config" : undefined,
    opts.follow ? "--follow" : undefined,
    opts.wait ? "--wait" : undefined,
    opts.cancelOnInterrupt ? "--cancel-on-interrupt" : undefined,
  ].filter((flag) => flag !== undefined);
  if (refused.length > 0) {
    throw new UsageError(
      `--batch cannot be combined with ${
        refused.join(", ")
      } (each line of the file is one job with its own command and request_id; follow a job with "airunner logs -f ID")`,
    );
  }
}

/** The defaults every line starts from (pure but for `readEnv`, which `--secret-env NAME` reads). */
export function batchDefaults(
  repository: string | undefined,
  opts: BatchFlags,
  envFile: Readonly<Record<string, string>>,
  defaultOwner: string,
  readEnv: (name: string) => string | undefined = () => undefined,
): BatchDefaults {
  const given = <K extends string, V>(key: K, value: V | undefined) =>
    (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
  return {
    ...given("queue", opts.queue === undefined ? undefined : checkQueueFlag(opts.queue)),
    owner: opts.owner ?? defaultOwner,
    environment: { ...envFile, ...parseKeyValues(opts.env, "--env") },
    secretEnvironment: parseSecretEnvEntries(opts.secretEnv, "--secret-env", readEnv),
    metadata: parseKeyValues(opts.metadata, "--metadata"),
    ...given(
      "timeoutSeconds",
      opts.timeout === undefined ? undefined : parseTimeoutFlag(opts.timeout),
    ),
    ...given("processType", opts.processType),
    ...checkedCheckoutFlags(repository, opts),
    ...given("workingDirectory", opts.workdir),
    ...retrySpecOf(opts),
    ...startSpecOf(opts),
    ...dependencySpecOf(opts),
  };
}

function checkQueueFlag(queue: string): string {
  return usageChecked(() => validateQueueName(queue, "--queue"));
}

/**
 * Parses and checks a whole batch file (pure but for `newRequestId`). A
 * mistake is a usage error naming the line and the key, so nothing is sent
 * when any line is wrong.
 */
export function parseBatchLines(
  text: string,
  defaults: BatchDefaults,
  newRequestId: () => string = () => crypto.randomUUID(),
): BatchJob[] {
  const jobs: BatchJob[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const source = raw.trim();
    if (source === "" || source.startsWith("#")) return;
    jobs.push(parseBatchLine(source, i + 1, defaults, newRequestId));
  });
  return jobs;
}

const REQUEST_ID_KEYS = ["request_id", "requestId"] as const;

function parseBatchLine(
  source: string,
  line: number,
  defaults: BatchDefaults,
  newRequestId: () => string,
): BatchJob {
  const where = `line ${line}`;
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch (error) {
    // V8's "(line 1 column 2)" would read as the file's line: keep the position only.
    const reason = (error as Error).message.replace(/ \(line \d+ column \d+\)$/, "");
    throw new UsageError(`${where}: not valid JSON: ${reason}`);
  }
  const file = checkJobFields(value, where, REQUEST_ID_KEYS);
  const fields = value as Record<string, unknown>;
  const ids = REQUEST_ID_KEYS.filter((key) => fields[key] !== undefined && fields[key] !== null);
  if (ids.length > 1) throw new UsageError(`${where}: give request_id or requestId, not both`);
  const givenId = ids[0] === undefined ? undefined : fields[ids[0]];
  if (givenId !== undefined && (typeof givenId !== "string" || givenId === "")) {
    throw new UsageError(`${where}: ${ids[0]} must be a non-empty string`);
  }
  if (file.command === undefined || file.command.trim() === "") {
    throw new UsageError(`${where}: command is required`);
  }
  const spec = { ...mergeJobSpecs(defaults, file), command: file.command };
  try {
    // Checked here first, so the complaint names its line; jobParamsOf builds the same policy.
    retryPolicyOf(spec);
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${where}: ${error.message}`);
    throw error;
  }
  const params = jobParamsOf(spec, `${where}: timeout`);
  checkStartTime(
    params,
    typeof givenId === "string" ? givenId : "",
    `${where}: ${spec.start?.runAtMs === undefined ? "delay" : "at"}`,
  );
  // The server's own rules, so that no line can make it refuse the call.
  try {
    const request = create(EnqueueJobRequestSchema, {
      queue: validateQueueName(file.queue ?? defaults.queue ?? "default"),
      requestId: validateRequestId((givenId as string | undefined) ?? newRequestId()),
      jobParams: validateJobParams(params),
    });
    return { line, request };
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    const problem = error.message.slice(error.field.length + 2);
    throw new UsageError(`${where}: ${lineKeyOf(error.field)}: ${problem}`);
  }
}

/** A request field (`job_params.working_directory`) as a batch line's key (`workingDirectory`). */
function lineKeyOf(field: string): string {
  const key = field.replace(/^job_params\./, "");
  if (key === "timeout_seconds") return "timeout";
  if (key === "run_at") return "at";
  if (key === "delay_ms") return "delay";
  if (key.startsWith("secret_environment")) return key.replace("secret_environment", "secret_env");
  if (key === "request_id") return key;
  return key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Splits `items` into chunks of at most `maxItems` items and `maxBytes` (a bigger item goes alone). */
export function chunksOf<T>(
  items: readonly T[],
  sizeOf: (item: T) => number,
  maxItems: number,
  maxBytes: number,
): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (current.length > 0 && (current.length >= maxItems || bytes + size > maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** The waits between tries of a chunk: 250 ms doubling, with jitter; a chunk has ATTEMPTS_PER_CHUNK tries. */
export const CHUNK_BACKOFF: BackoffPolicy = {
  initialMs: 250,
  maxMs: Number.POSITIVE_INFINITY,
  multiplier: 2,
};

/**
 * The codes on which a chunk, or an item of it, is sent again: only
 * unavailable and deadline_exceeded, narrower than the shared transient
 * codes, as `submit --batch` has always been: a person is waiting on it, so
 * a failed fetch (unknown) ends it at once with "cannot reach the server",
 * and an item the server answered internal or aborted is reported on its
 * line rather than sent again.
 */
const CHUNK_TRANSIENT_CODES = transientCodes({
  removing: [RpcCode.Unknown, RpcCode.Internal, RpcCode.Aborted],
});

/** Sends one EnqueueJobs call. */
export type SendBatch = (requests: EnqueueJobRequest[]) => Promise<EnqueueJobsResult[]>;

/**
 * Enqueues one chunk: the whole call is retried on Unavailable or
 * DeadlineExceeded, and so are items the server answered with one of
 * those; the request ids make a repeat harmless. Throws the call's error
 * when it cannot get through.
 */
export async function enqueueChunk(
  jobs: readonly BatchJob[],
  send: SendBatch,
  sleep: (ms: number) => Promise<void>,
  attempts = ATTEMPTS_PER_CHUNK,
): Promise<BatchOutcome[]> {
  const outcomes: BatchOutcome[] = [];
  let pending = jobs.map((_, i) => i);
  /** Sends what is pending; resolves with the items to send again (none on the last try). */
  const sendPending = async (attempt: number): Promise<number[]> => {
    const last = attempt + 1 >= attempts;
    const results = await send(pending.map((i) => jobs[i]!.request));
    if (results.length !== pending.length) {
      throw new Error(`the server answered ${results.length} results for ${pending.length} jobs`);
    }
    const again: number[] = [];
    results.forEach((result, k) => {
      const i = pending[k]!;
      const outcome = outcomeOf(jobs[i]!.line, result);
      if (!outcome.ok && CHUNK_TRANSIENT_CODES.has(outcome.code) && !last) again.push(i);
      else outcomes[i] = outcome;
    });
    pending = again;
    return again;
  };
  await retry(sendPending, {
    retryResult: (again) => again.length > 0,
    isRetryable: (error) => isTransient(error, CHUNK_TRANSIENT_CODES),
    maxAttempts: attempts,
    delayMs: (n) => backoffDelayMs(n, CHUNK_BACKOFF),
    clock: { sleep },
  });
  return outcomes;
}

function outcomeOf(line: number, result: EnqueueJobsResult): BatchOutcome {
  switch (result.outcome.case) {
    case "job":
      return { line, ok: true, jobId: result.outcome.value.jobId, created: result.created };
    case "error":
      return {
        line,
        ok: false,
        code: result.outcome.value.code as Code,
        message: result.outcome.value.message,
      };
    default:
      return { line, ok: false, code: RpcCode.Internal, message: "the server sent no outcome" };
  }
}

/** How `runBatchSubmit` prints and waits (console and timers by default). */
export interface BatchIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly sleep: (ms: number) => Promise<void>;
}

const CONSOLE_IO: BatchIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * Sends `jobs` chunk by chunk and prints each line's outcome in order: its
 * job id (or, with `json`, one object a line). Returns the exit code: 0, 1
 * when any line failed, or the call's code when a chunk could not be sent
 * (the lines from there on are not submitted).
 */
export function runBatchSubmit(
  jobs: readonly BatchJob[],
  clients: CliClients,
  options: { readonly json: boolean; readonly serverUrl: string },
  io: BatchIo = CONSOLE_IO,
): Promise<number> {
  return inSpan("airunner submit --batch", {
    kind: SpanKind.PRODUCER,
    attributes: { "airunner.jobs": jobs.length },
  }, async (span) => {
    const traced = withTraceparent(jobs, currentTraceparent());
    const send: SendBatch = async (requests) =>
      (await clients.jobs.enqueueJobs({ jobs: requests })).results;
    const chunks = chunksOf(
      traced,
      // The JSON the client sends: what the server's MAX_MESSAGE_BYTES measures.
      (job) => jsonByteLength("job.v1.EnqueueJobRequest", job.request) + 1,
      JOBS_PER_CALL,
      BYTES_PER_CALL,
    );
    let exitCode: number = ExitCode.Ok;
    for (const [c, chunk] of chunks.entries()) {
      let outcomes: BatchOutcome[];
      try {
        outcomes = await enqueueChunk(chunk, send, io.sleep);
      } catch (error) {
        const unsent = chunks.slice(c).flat();
        const { message, exitCode: code } = describeError(error, options.serverUrl);
        if (options.json) {
          for (const job of unsent) {
            io.out(JSON.stringify({ line: job.line, error: `not submitted: ${message}` }));
          }
        }
        const first = unsent[0]!.line;
        const last = unsent[unsent.length - 1]!.line;
        const lines = first === last ? `line ${first}` : `lines ${first}-${last}`;
        io.err(
          `airunner: error: ${lines} not submitted (${unsent.length} jobs): ${message}`,
        );
        span.setAttribute("airunner.exit_code", code);
        return code;
      }
      for (const outcome of outcomes) {
        if (outcome.ok) {
          io.out(
            options.json
              ? JSON.stringify({
                line: outcome.line,
                job_id: outcome.jobId,
                created: outcome.created,
              })
              : outcome.jobId,
          );
          continue;
        }
        const { message } = describeError(new RpcError(outcome.message, outcome.code));
        if (options.json) io.out(JSON.stringify({ line: outcome.line, error: message }));
        io.err(`airunner: error: line ${outcome.line}: ${message}`);
        exitCode = ExitCode.Error;
      }
    }
    span.setAttribute("airunner.exit_code", exitCode);
    return exitCode;
  });
}

/** `jobs` with the trace context in their metadata (unless a line set its own). */
function withTraceparent(jobs: readonly BatchJob[], traceparent: string | undefined): BatchJob[] {
  if (traceparent === undefined) return [...jobs];
  return jobs.map((job) => {
    const params = job.request.jobParams!;
    if (params.metadata[TRACEPARENT_METADATA_KEY] !== undefined) return job;
    return {
      line: job.line,
      request: create(EnqueueJobRequestSchema, {
        ...job.request,
        jobParams: {
          ...params,
          metadata: { ...params.metadata, [TRACEPARENT_METADATA_KEY]: traceparent },
        },
      }),
    };
  });
}

/** The text of `--batch FILE` (`-`: stdin). */
export async function readBatchInput(source: string): Promise<string> {
  try {
    return source === "-"
      ? await new Response(Deno.stdin.readable).text()
      : await Deno.readTextFile(source);
  } catch (error) {
    const what = source === "-" ? "stdin" : source;
    throw new UsageError(`--batch: cannot read ${what}: ${(error as Error).message}`);
  }
}
