/**
 * Scenario telemetry: what OpenTelemetry costs the server. The queue-cycle
 * workload (scripts/bench/queue_cycle.ts) runs against two fresh memory
 * servers, one without OTEL_* variables (airunner's instruments are
 * @opentelemetry/api no-ops) and one with Deno's built-in OpenTelemetry on
 * (OTEL_DENO=true), exporting OTLP http/protobuf to a sink in this process.
 * The load agents run without telemetry, so only the server's cost is
 * compared. Runs alternate off, on, on, off, on, off, off, on (2,000 jobs
 * each: 16,000 in all, fewer than queue-cycle's 20,000 so the scenario
 * stays under a minute; quick: off, on, on, off of 100 each), so drift in
 * a shared machine's speed falls on both sides alike. Target: jobs/s with
 * telemetry >= 0.9 × without ("telemetry costs ≤ 10% of queue-cycle
 * throughput").
 *
 * Memory store only: the instrumentation wraps every store the same way
 * (src/telemetry/instrumented_store.ts), and the store with the least work
 * per job shows its cost as the largest share.
 *
 * @module
 */
import {
  type BenchServer,
  machineCpuMs,
  startServerProcess,
  type TelemetryExport,
} from "./processes.ts";
import { QUEUE_CYCLE_CONCURRENCY, QUEUE_CYCLE_QUEUE, runQueueCycleLoad } from "./queue_cycle.ts";
import { type ScenarioContext, type ScenarioResult, target } from "./scenario.ts";

/** The stores the telemetry scenario runs on. */
export const TELEMETRY_STORES: readonly string[] = ["memory"];

/** Why it does not run on the others. */
export const TELEMETRY_SKIP_REASON =
  "telemetry overhead is measured on the memory store only: every store is wrapped by the " +
  "same instrumentation (src/telemetry/instrumented_store.ts), and the memory store, with the " +
  "least work of its own per job, shows the telemetry's cost as the largest share";

/**
 * The order of the runs. Each side's runs sit at the same mean position in
 * time, so a steady drift in the machine's speed falls on both alike; the
 * full run's eight shorter runs also spread a burst of other load thinner.
 */
const ORDER = {
  full: ["off", "on", "on", "off", "on", "off", "off", "on"],
  quick: ["off", "on", "on", "off"],
} as const;
type Side = "off" | "on";

/** How often the "on" server exports metrics, so they flow during the runs. */
const METRIC_EXPORT_INTERVAL_MS = 1_000;
const SERVICE_NAME = "airunner-bench";

export async function telemetryOverhead(context: ScenarioContext): Promise<ScenarioResult> {
  const jobs = context.quick ? 400 : 16_000;
  const order: readonly Side[] = context.quick ? ORDER.quick : ORDER.full;
  const jobsPerRun = jobs / order.length;
  await using sink = startOtlpSink();
  const telemetry: TelemetryExport = {
    endpoint: sink.endpoint,
    serviceName: SERVICE_NAME,
    metricExportIntervalMs: METRIC_EXPORT_INTERVAL_MS,
  };
  const servers = await startBoth(
    startServerProcess(context.store, { queues: [QUEUE_CYCLE_QUEUE] }),
    startServerProcess(context.store, { queues: [QUEUE_CYCLE_QUEUE], telemetry }),
  );
  const totals = {
    off: { jobs: 0, loadMs: 0, serverCpuMs: 0 },
    on: { jobs: 0, loadMs: 0, serverCpuMs: 0 },
  };
  const rates: number[] = [];
  const during = { requests: 0, bytes: 0, byPath: new Map<string, number>() };
  // CPU the rest of the machine used while the runs went on: noise.
  const others = { cpuMs: 0, elapsedMs: 0 };
  // What the "on" server spent while the "off" one was loaded (not in its CPU per job).
  let onServerIdleCpuMs = 0;
  let all: SinkCounts;
  try {
    for (const [i, side] of order.entries()) {
      context.progress(`run ${i + 1}/${order.length}: telemetry ${side}, ${jobsPerRun} jobs`);
      const before = { sink: sink.counts(), ...await cpuSnapshot(servers) };
      const run = await runQueueCycleLoad(servers[side], jobsPerRun, QUEUE_CYCLE_CONCURRENCY);
      const after = { sink: sink.counts(), ...await cpuSnapshot(servers) };
      if (side === "on") {
        during.requests += after.sink.requests - before.sink.requests;
        during.bytes += after.sink.bytes - before.sink.bytes;
        for (const [path, n] of after.sink.byPath) {
          const earlier = before.sink.byPath.get(path) ?? 0;
          during.byPath.set(path, (during.byPath.get(path) ?? 0) + n - earlier);
        }
      }
      totals[side].jobs += run.jobs;
      totals[side].loadMs += run.loadMs;
      totals[side].serverCpuMs += run.cpuMs.server;
      rates.push((run.jobs / run.loadMs) * 1000);
      others.cpuMs += after.machine - before.machine - (after.off - before.off) -
        (after.on - before.on) - run.cpuMs.submit - run.cpuMs.drain - run.cpuMs.bench;
      if (side === "off") onServerIdleCpuMs += after.on - before.on;
      others.elapsedMs += run.elapsedMs;
    }
  } finally {
    // The "on" server flushes what it still holds as it exits; count that too.
    await Promise.all([servers.off.stop(), servers.on.stop()]);
    all = sink.counts();
  }

  const rate = (side: Side) => (totals[side].jobs / totals[side].loadMs) * 1000;
  const cpuPerJobUs = (side: Side) => (totals[side].serverCpuMs * 1000) / totals[side].jobs;
  const serverShare = (side: Side) => totals[side].serverCpuMs / totals[side].loadMs;
  const ratio = rate("on") / rate("off");
  const extraUs = cpuPerJobUs("on") - cpuPerJobUs("off");
  const shares = `the server used ${Math.round(serverShare("off") * 100)}% of a core off, ${
    Math.round(serverShare("on") * 100)
  }% on`;
  const limit = serverShare("on") >= 0.9
    ? `the server's CPU with telemetry on (${shares}): its extra CPU per job is what lowers jobs/s, ` +
      "less than in proportion because the clients' CPU and round trips still set part of the pace"
    : `the clients' CPU and round trips (${shares}): the server's extra CPU per job lowers jobs/s ` +
      "only as far as it takes CPU from the load agents, on 2 cores shared by the server, " +
      "2 agents and the sink";
  return {
    name: "telemetry",
    store: context.store,
    inputs: {
      jobs,
      runs: order.join(", "),
      jobsPerRun,
      submitters: QUEUE_CYCLE_CONCURRENCY,
      drainers: QUEUE_CYCLE_CONCURRENCY,
      method:
        "two fresh servers (off: no OTEL_* variables; on: OTEL_DENO=true), used alternately; " +
        "a side's jobs/s = its jobs / the sum of its runs' load time (first agent call to last " +
        "agent end, process start-up left out); CPU per job = its server's CPU over its runs / its jobs",
      otel:
        `OTEL_DENO=true, OTLP http/protobuf to a sink in the bench process, OTEL_SERVICE_NAME=${SERVICE_NAME}, ` +
        `OTEL_METRIC_EXPORT_INTERVAL=${METRIC_EXPORT_INTERVAL_MS}, on the server only (agents without OTEL)`,
    },
    figures: [
      { name: "jobs/s off", value: rate("off"), unit: "jobs/s" },
      { name: "jobs/s on", value: rate("on"), unit: "jobs/s" },
      { name: "ratio on/off", value: ratio, unit: "× off" },
      { name: "server CPU per job off", value: cpuPerJobUs("off"), unit: "µs" },
      { name: "server CPU per job on", value: cpuPerJobUs("on"), unit: "µs" },
      { name: "OTLP requests (on runs)", value: during.requests, unit: "requests" },
      { name: "OTLP bytes (on runs)", value: during.bytes, unit: "bytes" },
    ],
    targets: [
      target(
        "ratio on/off",
        ratio,
        ">=",
        0.9,
        "telemetry costs ≤ 10% of queue-cycle throughput",
      ),
    ],
    notes: [
      "per job, with telemetry on, the server records 6 spans and 4 airunner metric updates: " +
      "3 request spans (the span Deno.serve makes for each of EnqueueJob, DequeueJob, CompleteJob, " +
      "renamed to the RPC with rpc.* and airunner.queue/job_id attributes in src/server/http_server.ts), " +
      "3 store child spans (store.enqueue, store.dequeue, store.complete, src/telemetry/instrumented_store.ts), " +
      "counters jobs.enqueued/dequeued/completed and histogram dequeue.wait.duration; Deno adds 5 " +
      "HTTP metric updates per request (http.server.request.duration, active_requests up and " +
      "down, request and response body size) and v8js.* gauges; the queue.depth gauge reads the " +
      "store once per metric export. " +
      "Off, the same calls reach @opentelemetry/api's no-ops, so both sides pay for the calls; the " +
      "difference is recording and exporting",
      `limited by ${limit}; telemetry adds ${formatNumber(extraUs)} µs of server CPU per job (${
        formatNumber((extraUs / cpuPerJobUs("off")) * 100)
      }%), which counts Deno's exporter threads (/proc counts the whole process)`,
      `each run's jobs/s, in order: ${
        order.map((side, i) => `${side} ${formatNumber(rates[i] ?? Number.NaN)}`).join(", ")
      }; on/off of each neighbouring pair: ${
        pairRatios(order, rates).map((r) => r.toFixed(2)).join(", ")
      }; other processes on the machine used ${
        Math.round((others.cpuMs / others.elapsedMs) * 100)
      }% of a core during the runs (a busy machine makes the figures noisy)`,
      `during the on runs the sink read ${during.requests} OTLP requests (${
        describePaths(during.byPath)
      }), ${formatNumber(during.bytes / totals.on.jobs)} bytes per job; in all, idle exports ` +
      `and the exit flush included, ${all.requests} requests and ${
        formatNumber(all.bytes)
      } bytes; ` +
      `while idle during the off runs the on server used ${
        formatNumber(onServerIdleCpuMs)
      } ms of CPU (exports, not in its CPU per job)`,
      ...(during.requests === 0
        ? [
          "no telemetry reached the sink during the on runs (too short for an export): the on " +
          "figures measure recording, not exporting",
        ]
        : []),
      ...(context.quick
        ? [`quick: ${jobsPerRun} jobs per run, too few for the ratio to mean much`]
        : []),
    ],
  };
}

/** CPU time of the machine and of each server, in ms. */
async function cpuSnapshot(
  servers: Record<Side, BenchServer>,
): Promise<{ machine: number; off: number; on: number }> {
  const [machine, off, on] = await Promise.all([
    machineCpuMs(),
    servers.off.cpuMs(),
    servers.on.cpuMs(),
  ]);
  return { machine, off, on };
}

/** on/off of runs 1-2, 3-4, ... (each pair holds one of each). */
function pairRatios(order: readonly Side[], rates: readonly number[]): number[] {
  const ratios: number[] = [];
  for (let i = 0; i + 1 < order.length; i += 2) {
    const [a = Number.NaN, b = Number.NaN] = [rates[i], rates[i + 1]];
    ratios.push(order[i] === "on" ? a / b : b / a);
  }
  return ratios;
}

/** Starts both servers; if one fails, stops the other. */
async function startBoth(
  off: Promise<BenchServer>,
  on: Promise<BenchServer>,
): Promise<Record<Side, BenchServer>> {
  const [a, b] = await Promise.allSettled([off, on]);
  if (a.status === "fulfilled" && b.status === "fulfilled") return { off: a.value, on: b.value };
  await Promise.all([a, b].map((s) => s.status === "fulfilled" ? s.value.stop() : undefined));
  throw a.status === "rejected" ? a.reason : (b as PromiseRejectedResult).reason;
}

/** What the sink has received so far. */
interface SinkCounts {
  readonly requests: number;
  readonly bytes: number;
  /** Requests by path (/v1/traces, /v1/metrics, /v1/logs). */
  readonly byPath: ReadonlyMap<string, number>;
}

/** An OTLP/HTTP endpoint that reads and discards what it is sent, counting it. */
interface OtlpSink extends AsyncDisposable {
  readonly endpoint: string;
  counts(): SinkCounts;
}

/** Starts an OTLP sink on a free 127.0.0.1 port. */
function startOtlpSink(): OtlpSink {
  let requests = 0;
  let bytes = 0;
  const byPath = new Map<string, number>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.arrayBuffer();
    const path = new URL(req.url).pathname;
    requests++;
    bytes += body.byteLength;
    byPath.set(path, (byPath.get(path) ?? 0) + 1);
    // An empty Export*ServiceResponse: everything accepted.
    return new Response(new Uint8Array(), {
      headers: { "content-type": "application/x-protobuf" },
    });
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    counts: () => ({ requests, bytes, byPath: new Map(byPath) }),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function describePaths(byPath: ReadonlyMap<string, number>): string {
  const parts = [...byPath].filter(([, n]) => n > 0).map(([path, n]) => `${path} ${n}`);
  return parts.length === 0 ? "none" : parts.join(", ");
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  return value.toLocaleString("en-US", { maximumFractionDigits: Math.abs(value) >= 100 ? 0 : 1 });
}
