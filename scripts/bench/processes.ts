/**
 * The processes a benchmark starts (an airunner server, workers, load
 * agents) and what /proc says about them: resident memory and CPU time.
 *
 * On the AWS store the server is `airunner orchestrator`, against the AWS
 * stand-ins (dynalite, fauxqs) running in this process: started once per
 * bench run, on first use, and stopped by {@link stopAwsStandIns}. Every
 * orchestrator gets fresh tables and queues under a name prefix of its own.
 *
 * Every child runs without the OTEL_* variables of the bench's environment,
 * so a stray OTEL_DENO=true does not turn telemetry on behind a figure's
 * back; only a server started with {@link ServerOptions.telemetry} exports
 * (the telemetry scenario's "on" server).
 *
 * @module
 */
import { airunnerArgv, freePort, waitForHealth } from "../airunner_argv.ts";
import { type AwsEmulators, startAwsEmulators } from "../aws_emulators.ts";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { provisionAwsResources } from "../../src/store/aws/provision.ts";

/** A child process the benchmark started and stops. */
export interface BenchProcess {
  readonly pid: number;
  /** Resident set size in bytes (Linux /proc; NaN elsewhere). */
  rssBytes(): Promise<number>;
  /** User + system CPU time used so far, in milliseconds (Linux /proc; NaN elsewhere). */
  cpuMs(): Promise<number>;
  /** Stops the process (SIGINT, then SIGKILL after 10 s) and waits for it. */
  stop(): Promise<void>;
}

/** A running airunner server. */
export interface BenchServer extends BenchProcess {
  readonly url: string;
}

function wrap(child: Deno.ChildProcess): BenchProcess {
  let stopped: Promise<void> | undefined;
  return {
    pid: child.pid,
    rssBytes: () => readRss(child.pid),
    cpuMs: () => readCpuMs(child.pid),
    stop() {
      stopped ??= (async () => {
        try {
          child.kill("SIGINT");
        } catch {
          return;
        }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Gone meanwhile.
          }
        }, 10_000);
        await child.status;
        clearTimeout(timer);
      })();
      return stopped;
    },
  };
}

/** What a scenario's server must offer. */
export interface ServerOptions {
  /**
   * Queues the scenario enqueues to or dequeues from. The embedded stores
   * make queues on first use; the AWS store needs their SQS queues created
   * beforehand, so exactly these are.
   */
  readonly queues?: readonly string[];
  /**
   * Turns Deno's built-in OpenTelemetry on in the server (OTEL_DENO=true),
   * exporting OTLP http/protobuf to `endpoint`. Absent, the server runs
   * without OTEL_* variables: airunner's instruments are no-ops.
   */
  readonly telemetry?: TelemetryExport;
}

/** Where and how a server exports its spans and metrics. */
export interface TelemetryExport {
  /** OTLP/HTTP base URL, such as `http://127.0.0.1:4318`. */
  readonly endpoint: string;
  readonly serviceName: string;
  /** OTEL_METRIC_EXPORT_INTERVAL: how often metrics are exported. */
  readonly metricExportIntervalMs: number;
}

/**
 * The environment of a child: this process's, less every OTEL_* variable,
 * with Deno's update check off (children talk to 127.0.0.1 only), plus
 * `extra`. Use with `clearEnv: true`.
 */
export function childEnv(extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) => !name.startsWith("OTEL_")),
  );
  // Deno's background update check would look up and call dl.deno.land.
  return { ...env, DENO_NO_UPDATE_CHECK: "1", ...extra };
}

/** The OTEL_* variables that make a Deno process export to `telemetry`. */
function telemetryEnv(telemetry: TelemetryExport | undefined): Record<string, string> {
  if (telemetry === undefined) return {};
  return {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: telemetry.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
    OTEL_SERVICE_NAME: telemetry.serviceName,
    OTEL_METRIC_EXPORT_INTERVAL: String(telemetry.metricExportIntervalMs),
  };
}

/**
 * Starts an airunner server for `store` on a free loopback port: `airunner
 * server` (a fresh data dir for sqlite), or for "aws" `airunner orchestrator`
 * on fresh tables and queues in the stand-ins.
 */
export async function startServerProcess(
  store: string,
  options: ServerOptions = {},
): Promise<BenchServer> {
  if (store === "aws") {
    return await startOrchestratorProcess(options.queues ?? [], telemetryEnv(options.telemetry));
  }
  const port = freePort();
  const dataDir = await Deno.makeTempDir({ prefix: "airunner-bench-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: airunnerArgv([
      "server",
      "--listen",
      `127.0.0.1:${port}`,
      "--store",
      store,
      "--data-dir",
      dataDir,
      "--no-auth",
      "--log-level",
      "warn",
    ]),
    env: childEnv(telemetryEnv(options.telemetry)),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  const process = wrap(child);
  try {
    await waitForHealth(url);
  } catch (error) {
    await process.stop();
    await Deno.remove(dataDir, { recursive: true });
    throw error;
  }
  return {
    ...process,
    url,
    async stop() {
      await process.stop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

let standIns: Promise<AwsEmulators> | undefined;

/** The AWS stand-ins of this bench run, started on first use. */
function awsStandIns(): Promise<AwsEmulators> {
  standIns ??= startAwsEmulators();
  return standIns;
}

/** Stops the AWS stand-ins if this run started them (safe to call more than once). */
export async function stopAwsStandIns(): Promise<void> {
  const running = standIns;
  standIns = undefined;
  if (running === undefined) return;
  try {
    await (await running).stop();
  } catch {
    // They never started, or are gone already.
  }
}

/**
 * Starts `airunner orchestrator` on fresh tables and on SQS queues for
 * `queues` (named `<prefix><queue>`, with a prefix unique to this server).
 */
async function startOrchestratorProcess(
  queues: readonly string[],
  otelEnv: Readonly<Record<string, string>>,
): Promise<BenchServer> {
  const emulators = await awsStandIns();
  const id = crypto.randomUUID().slice(0, 8);
  const names = {
    jobsTable: `bench-${id}-jobs`,
    eventsTable: `bench-${id}-events`,
    queuePrefix: `bench-${id}-`,
  };
  // The stand-ins' dummy credentials, given to these clients alone (this
  // process's environment, which workers and agents inherit, stays as it is).
  const config = {
    region: emulators.env.AWS_REGION!,
    credentials: {
      accessKeyId: emulators.env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: emulators.env.AWS_SECRET_ACCESS_KEY!,
    },
  };
  const dynamodb = new DynamoDBClient({ ...config, endpoint: emulators.dynamodbEndpoint });
  const sqs = new SQSClient({ ...config, endpoint: emulators.sqsEndpoint });
  try {
    await provisionAwsResources({ dynamodb, sqs }, {
      jobsTable: names.jobsTable,
      eventsTable: names.eventsTable,
      sqsQueues: queues.map((queue) => `${names.queuePrefix}${queue}`),
    });
  } finally {
    dynamodb.destroy();
    sqs.destroy();
  }
  const secret = crypto.getRandomValues(new Uint8Array(48));
  const port = freePort();
  // Only --tls auto would write here; a temporary one keeps the default clean.
  const dataDir = await Deno.makeTempDir({ prefix: "airunner-bench-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: airunnerArgv([
      "orchestrator",
      "--listen",
      `127.0.0.1:${port}`,
      "--jobs-table",
      names.jobsTable,
      "--events-table",
      names.eventsTable,
      "--queue-prefix",
      names.queuePrefix,
      "--data-dir",
      dataDir,
      "--no-auth",
      "--log-level",
      "warn",
    ]),
    env: childEnv({
      ...emulators.env,
      AIRUNNER_TOKEN_SIGNING_SECRET: btoa(String.fromCharCode(...secret)),
      ...otelEnv,
    }),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = keepTail(child.stderr);
  const url = `http://127.0.0.1:${port}`;
  const process = wrap(child);
  try {
    await waitForHealth(url);
  } catch (error) {
    await process.stop();
    await Deno.remove(dataDir, { recursive: true });
    throw new Error(`airunner orchestrator did not start; its stderr ended:\n${await stderr()}`, {
      cause: error,
    });
  }
  return {
    ...process,
    url,
    async stop() {
      await process.stop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/**
 * Reads `stream` to its end, keeping its last 4 KB, so a child's log neither
 * fills the pipe nor the bench output; the result waits for the end.
 */
function keepTail(stream: ReadableStream<Uint8Array>): () => Promise<string> {
  let tail = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) tail = (tail + decoder.decode(chunk)).slice(-4096);
  })().catch(() => {});
  return async () => {
    await done;
    return tail;
  };
}

/** Starts `airunner worker` against `server`. */
export function startWorkerProcess(
  server: string,
  concurrency: number,
  queue: string,
): BenchProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: airunnerArgv([
      "worker",
      "--server",
      server,
      "--queue",
      queue,
      "--concurrency",
      String(concurrency),
      "--log-level",
      "warn",
    ]),
    env: childEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return wrap(child);
}

/**
 * `deno run` of a bench script with the project's config, network, read and
 * env access, and `denoFlags`.
 */
function benchScriptArgv(
  script: URL,
  denoFlags: readonly string[],
  args: readonly string[],
): string[] {
  return [
    "run",
    "--config",
    new URL("../../deno.json", import.meta.url).pathname,
    "--allow-net",
    "--allow-read",
    "--allow-env",
    ...denoFlags,
    script.pathname,
    ...args,
  ];
}

/** Starts a bench script that runs until stopped (see {@link benchScriptArgv}). */
export function startScriptProcess(
  script: URL,
  args: readonly string[],
  options: { readonly env: Record<string, string>; readonly denoFlags?: readonly string[] },
): BenchProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: benchScriptArgv(script, options.denoFlags ?? [], args),
    env: options.env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  return wrap(child);
}

/** Runs a load agent (scripts/bench/agent.ts) to its end; returns its JSON result. */
export async function runAgent<T>(args: string[], onStart?: (p: BenchProcess) => void): Promise<T> {
  const child = new Deno.Command(Deno.execPath(), {
    args: benchScriptArgv(new URL("./agent.ts", import.meta.url), ["--allow-sys=hostname"], args),
    env: childEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  onStart?.(wrap(child));
  const [status, out] = await Promise.all([child.status, new Response(child.stdout).text()]);
  if (!status.success) {
    throw new Error(`bench agent ${args[0]} failed with exit code ${status.code}`);
  }
  return JSON.parse(out) as T;
}

/**
 * Runs a pickup agent role (`session-pickup` or `floor-pickup`) against
 * `serverUrl` with `args` on top; returns its samples in ms.
 */
export async function runPickupAgent(
  role: "session-pickup" | "floor-pickup",
  serverUrl: string,
  counts: { readonly samples: number; readonly warmup: number },
  args: readonly string[],
): Promise<number[]> {
  const result = await runAgent<{ samples: number[] }>([
    role,
    "--server",
    serverUrl,
    "--samples",
    String(counts.samples),
    "--warmup",
    String(counts.warmup),
    ...args,
  ]);
  return result.samples;
}

/** CPU time this (the bench) process has used so far, in ms; on the AWS store it runs the stand-ins. */
export function benchProcessCpuMs(): Promise<number> {
  return readCpuMs(Deno.pid);
}

/**
 * CPU time all processes on the machine have used since boot, in ms,
 * summed over cores (Linux /proc/stat: user, nice, system, irq, softirq;
 * NaN elsewhere).
 */
export async function machineCpuMs(): Promise<number> {
  try {
    const stat = await Deno.readTextFile("/proc/stat");
    const fields = (/^cpu\s+(.*)$/m.exec(stat)?.[1] ?? "").split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq ... (guest time is inside user)
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = fields;
    if (fields.length < 7) return Number.NaN;
    return (user + nice + system + irq + softirq) * 10; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

async function readRss(pid: number): Promise<number> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb === undefined ? Number.NaN : Number(kb) * 1024;
  } catch {
    return Number.NaN;
  }
}

async function readCpuMs(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after the command name (which may hold spaces) start at ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
    return ticks * 10; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}
