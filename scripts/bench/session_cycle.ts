/**
 * Scenario 2b, queue cycle on the session path (no process): the queue-cycle
 * workload as a busy deployment would run it. Producers enqueue no-op jobs
 * with EnqueueJobs (batches of {@link SESSION_BATCH}), and consumers hold
 * WorkerSession streams, each running the worker's claim loop with
 * {@link SESSION_CONCURRENCY} jobs at a time and completing every job at
 * once; a completion carries the credit for the next job. Each load agent
 * process runs one producer and {@link SESSION_STREAMS} sessions and keeps
 * at most {@link SESSION_BACKLOG} of its jobs waiting, so the producer runs
 * at the consumers' pace instead of flooding the server. Jobs completed
 * (acknowledged) in a fixed window after a warmup are counted.
 *
 * Then pickup on the session path, on one clock in one agent process: a
 * session claim waits on an idle queue, one EnqueueJob is sent, and the
 * sample is the time until claim() returns the job.
 *
 * Targets: on memory, jobs/s >= 1.5 x the RPC baseline of the same run; on
 * sqlite, jobs/s >= 0.8 x memory's session jobs/s; pickup p50 <= 2 ms on
 * both. Not run on the AWS store (see main.ts).
 *
 * @module
 */
import {
  type BenchProcess,
  machineCpuMs,
  runAgent,
  runPickupAgent,
  startServerProcess,
} from "./processes.ts";
import {
  type Figure,
  figureOf,
  type ScenarioContext,
  type ScenarioResult,
  type Target,
  target,
} from "./scenario.ts";
import type { SessionCycleResult } from "./session_agent.ts";
import { percentile } from "./stats.ts";

/** The scenario's name in the table (and in `--only`). */
export const SESSION_CYCLE_SCENARIO = "queue-cycle (session)";

/** Load agent processes, each with one producer and {@link SESSION_STREAMS} sessions. */
export const SESSION_AGENTS = 1;
/** WorkerSession streams per agent process. */
export const SESSION_STREAMS = 2;
/** Jobs each session's claim loop holds at once. */
export const SESSION_CONCURRENCY = 64;
/** Jobs per EnqueueJobs call. */
export const SESSION_BATCH = 200;
/** EnqueueJobs calls in flight per producer. */
export const SESSION_IN_FLIGHT = 2;
/** Most jobs a producer keeps enqueued and not completed. */
export const SESSION_BACKLOG = 2_000;

const QUEUE = "bench";
const PICKUP_QUEUE = "pickup";

/** What the throughput part measured, over the window. */
interface Throughput {
  readonly jobs: number;
  /** Milliseconds the first agent's load began after the window opened (< 0: before). */
  readonly lateMs: number;
  /** CPU as a share of one core over the window. */
  readonly cpu: { readonly server: number; readonly agents: number; readonly machine: number };
}

export async function queueCycleSession(context: ScenarioContext): Promise<ScenarioResult> {
  const warmupMs = context.quick ? 1_500 : 4_000;
  const windowMs = context.quick ? 1_000 : 10_000;
  const pickupSamples = context.quick ? 30 : 200;
  const pickupWarmup = context.quick ? 10 : 30;

  const { jobs, lateMs, cpu } = await measureThroughput(context.store, warmupMs, windowMs);
  const late = !(lateMs < 0);
  if (late && !context.quick) {
    throw new Error(
      `a session agent completed its first job ${
        Math.round(lateMs)
      } ms after the window opened: the warmup (${warmupMs} ms) is too short for this machine`,
    );
  }
  const rate = (jobs / windowMs) * 1000;
  // Whatever else ran meanwhile (another test, a stray process) took CPU from both.
  const others = Math.max(0, cpu.machine - cpu.server - cpu.agents);

  const samples = await measurePickup(context.store, pickupSamples, pickupWarmup);
  const pickupP50 = percentile(samples, 50);
  const pickupP99 = percentile(samples, 99);

  const figures: Figure[] = [
    { name: "jobs/s", value: rate, unit: "jobs/s" },
    { name: "server CPU", value: cpu.server * 100, unit: "% of a core" },
    { name: "server CPU per job", value: (cpu.server * windowMs * 1000) / jobs, unit: "µs" },
    { name: "agent CPU", value: cpu.agents * 100, unit: "% of a core" },
    { name: "agent CPU per job", value: (cpu.agents * windowMs * 1000) / jobs, unit: "µs" },
    { name: "pickup p50", value: pickupP50, unit: "ms" },
    { name: "pickup p99", value: pickupP99, unit: "ms" },
  ];
  const baseline = figureOf(context, "rpc-baseline", "calls/s");
  const targets: Target[] = [];
  if (context.store === "memory") {
    targets.push(target("jobs/s", rate, ">=", 1.5 * baseline, "1.5 × rpc-baseline calls/s"));
  } else {
    const memoryRate = figureOf(context, SESSION_CYCLE_SCENARIO, "jobs/s", "memory");
    targets.push(
      target("jobs/s", rate, ">=", 0.8 * memoryRate, "0.8 × memory store's session jobs/s"),
    );
  }
  targets.push(target("pickup p50", pickupP50, "<=", 2, "2 ms"));
  const cores = navigator.hardwareConcurrency;
  const limit = cpu.server >= 0.9
    ? "the server's CPU"
    : cpu.agents >= 0.9
    ? "the load agent's CPU"
    : cpu.machine >= 0.9 * cores
    ? `the machine's CPU (all ${cores} cores busy)`
    : "latency on the session streams, not CPU (neither a process nor the machine is saturated)";
  const percent = (share: number) => `${Math.round(share * 100)}%`;
  return {
    name: SESSION_CYCLE_SCENARIO,
    store: context.store,
    inputs: {
      warmupMs,
      windowMs,
      agents: SESSION_AGENTS,
      sessionsPerAgent: SESSION_STREAMS,
      jobsPerSession: SESSION_CONCURRENCY,
      enqueueBatch: SESSION_BATCH,
      enqueueCallsInFlight: SESSION_IN_FLIGHT,
      backlog: SESSION_BACKLOG,
      pickupSamples,
    },
    figures,
    targets,
    notes: [
      `limited by ${limit}; per job: one item of a batched enqueue, one pushed job and one completion on a stream, no round trip of its own`,
      `CPU in the window, in % of a core (${cores} cores: ${cores * 100}%): machine ${
        percent(cpu.machine)
      }, server ${percent(cpu.server)}, agent ${percent(cpu.agents)}, other processes ${
        percent(others)
      }${others >= 0.25 ? " (foreign load: the figures understate this machine)" : ""}`,
      "agent CPU: the load agent process (batch producer and session consumers together); jobs/s counts completions acknowledged in the window",
      "pickup: EnqueueJob sent -> session claim() returns the job, timed in one process on one clock, on an idle queue of a fresh server; queue-cycle (pickup floor) shows how low it can go on this machine",
      ...(late
        ? [`the agent's load began ${Math.round(lateMs)} ms into the window: jobs/s is understated`]
        : []),
      ...(context.store === "memory" && !Number.isFinite(baseline)
        ? ["the jobs/s target needs rpc-baseline in the same run (--only rpc-baseline,...)"]
        : []),
    ],
  };
}

/**
 * Runs the load agents against a fresh server and counts the jobs they
 * completed in the window; CPU is read from /proc at the window's edges.
 */
async function measureThroughput(
  store: string,
  warmupMs: number,
  windowMs: number,
): Promise<Throughput> {
  const server = await startServerProcess(store, { queues: [QUEUE] });
  try {
    // Warmup includes the agents' start-up; the window is on the wall clock
    // shared by every process on this host.
    const windowStartMs = Date.now() + warmupMs;
    const windowEndMs = windowStartMs + windowMs;
    const serverCpu = cpuOverWindow(server, windowStartMs, windowEndMs);
    const machineCpu = cpuOverWindow({ cpuMs: machineCpuMs }, windowStartMs, windowEndMs);
    const agentCpu: Promise<number>[] = [];
    const agents = await Promise.all(
      Array.from({ length: SESSION_AGENTS }, () =>
        runAgent<SessionCycleResult>(
          [
            "session-cycle",
            "--server",
            server.url,
            "--queue",
            QUEUE,
            "--sessions",
            String(SESSION_STREAMS),
            "--concurrency",
            String(SESSION_CONCURRENCY),
            "--batch",
            String(SESSION_BATCH),
            "--in-flight",
            String(SESSION_IN_FLIGHT),
            "--backlog",
            String(SESSION_BACKLOG),
            "--window-start",
            String(windowStartMs),
            "--window-end",
            String(windowEndMs),
          ],
          (p) => void agentCpu.push(cpuOverWindow(p, windowStartMs, windowEndMs)),
        )),
    );
    return {
      jobs: agents.reduce((sum, a) => sum + a.completedInWindow, 0),
      lateMs: Math.max(...agents.map((a) => a.firstCompletedAtMs - windowStartMs)),
      cpu: {
        server: (await serverCpu) / windowMs,
        agents: (await Promise.all(agentCpu)).reduce((a, b) => a + b, 0) / windowMs,
        machine: (await machineCpu) / windowMs,
      },
    };
  } finally {
    await server.stop();
  }
}

/**
 * Pickup samples (ms) from a session-pickup agent against a server of their
 * own: its queue is idle, and nothing the throughput run left behind (a
 * backlog, sessions still closing) is in the way.
 */
async function measurePickup(store: string, samples: number, warmup: number): Promise<number[]> {
  const server = await startServerProcess(store, { queues: [PICKUP_QUEUE] });
  try {
    return await runPickupAgent("session-pickup", server.url, { samples, warmup }, [
      "--queue",
      PICKUP_QUEUE,
    ]);
  } finally {
    await server.stop();
  }
}

/** CPU time `process` uses between two wall-clock instants, in ms (NaN if it is gone). */
async function cpuOverWindow(
  process: Pick<BenchProcess, "cpuMs">,
  startMs: number,
  endMs: number,
): Promise<number> {
  await sleepUntil(startMs);
  const before = await process.cpuMs();
  await sleepUntil(endMs);
  return (await process.cpuMs()) - before;
}

function sleepUntil(epochMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, epochMs - Date.now())));
}
