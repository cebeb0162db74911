/**
 * Scenario 2, queue cycle (no process): jobs enqueued by 32 concurrent
 * submitters and drained by 32 claim loops that complete each job at once,
 * one RPC per operation (enqueue, dequeue, complete). Target: jobs/s >= 0.4
 * x the RPC baseline of the same run; on sqlite also >= 0.6 x the memory
 * store's jobs/s. On the AWS store (stand-ins in the bench process) fewer
 * jobs run, the ratio to the memory store is a figure rather than a target,
 * and the bench process's CPU (the stand-ins) is reported.
 *
 * @module
 */
import {
  AWS_CALLS_PER_JOB_TOTAL,
  AWS_QUEUE_CYCLE_JOBS,
  AWS_STAND_IN_NOTE,
  awsCallsSentence,
} from "./aws.ts";
import { benchProcessCpuMs, type BenchServer, runAgent, startServerProcess } from "./processes.ts";
import {
  type Figure,
  figureOf,
  type ScenarioContext,
  type ScenarioResult,
  type Target,
  target,
} from "./scenario.ts";

/** Submitters and claim loops of the queue-cycle workload (each). */
export const QUEUE_CYCLE_CONCURRENCY = 32;

/** The queue the workload uses (the agents' default). */
export const QUEUE_CYCLE_QUEUE = "bench";

/** What one run of the queue-cycle workload measured. */
export interface QueueCycleRun {
  readonly jobs: number;
  /** From starting the agents' processes to both agents' exit. */
  readonly elapsedMs: number;
  /** Jobs per second: `jobs` over `elapsedMs`. */
  readonly rate: number;
  /**
   * From the first agent's first call to the last agent's end, by the
   * agents' wall clocks: `elapsedMs` less process start-up and exit.
   */
  readonly loadMs: number;
  /** CPU time each process used during the run, in ms (NaN where /proc is missing). */
  readonly cpuMs: {
    readonly server: number;
    readonly submit: number;
    readonly drain: number;
    /** This process (on the AWS store it runs the stand-ins). */
    readonly bench: number;
  };
}

/** The part of an agent's result that says when its load ran (scripts/bench/agent.ts). */
interface AgentWindow {
  readonly startedAtMs: number;
  readonly endedAtMs: number;
}

/**
 * Runs the queue-cycle workload once against `server` (which must offer
 * queue {@link QUEUE_CYCLE_QUEUE}): a submit agent enqueues `jobs` jobs
 * with `concurrency` loops while a drain agent dequeues and completes as
 * many with as many loops. CPU is read from /proc before and after.
 */
export async function runQueueCycleLoad(
  server: BenchServer,
  jobs: number,
  concurrency = QUEUE_CYCLE_CONCURRENCY,
): Promise<QueueCycleRun> {
  const serverCpuBefore = await server.cpuMs();
  const benchCpuBefore = await benchProcessCpuMs();
  const started = performance.now();
  const agentCpu: Promise<number>[] = [];
  const common = [
    "--server",
    server.url,
    "--queue",
    QUEUE_CYCLE_QUEUE,
    "--jobs",
    String(jobs),
    "--concurrency",
    String(concurrency),
  ];
  const agents = await Promise.all([
    runAgent<AgentWindow>(
      ["submit", ...common],
      (p) => void agentCpu.push(sampleCpuUntilExit(p.cpuMs)),
    ),
    runAgent<AgentWindow>(
      ["drain", ...common],
      (p) => void agentCpu.push(sampleCpuUntilExit(p.cpuMs)),
    ),
  ]);
  const elapsedMs = performance.now() - started;
  const serverCpu = (await server.cpuMs()) - serverCpuBefore;
  const bench = (await benchProcessCpuMs()) - benchCpuBefore;
  const [submit = Number.NaN, drain = Number.NaN] = await Promise.all(agentCpu);
  return {
    jobs,
    elapsedMs,
    rate: (jobs / elapsedMs) * 1000,
    loadMs: Math.max(...agents.map((a) => a.endedAtMs)) -
      Math.min(...agents.map((a) => a.startedAtMs)),
    cpuMs: { server: serverCpu, submit, drain, bench },
  };
}

export async function queueCycle(context: ScenarioContext): Promise<ScenarioResult> {
  const aws = context.store === "aws";
  const jobs = aws
    ? (context.quick ? AWS_QUEUE_CYCLE_JOBS.quick : AWS_QUEUE_CYCLE_JOBS.full)
    : (context.quick ? 1_000 : 20_000);
  const concurrency = QUEUE_CYCLE_CONCURRENCY;
  const server = await startServerProcess(context.store, { queues: [QUEUE_CYCLE_QUEUE] });
  try {
    const run = await runQueueCycleLoad(server, jobs, concurrency);
    const { elapsedMs, rate } = run;
    // CPU as a share of one core over the run.
    const cpu = {
      server: run.cpuMs.server / elapsedMs,
      submit: run.cpuMs.submit / elapsedMs,
      drain: run.cpuMs.drain / elapsedMs,
      bench: run.cpuMs.bench / elapsedMs,
    };
    const baseline = figureOf(context, "rpc-baseline", "calls/s");
    const limit = cpu.server >= 0.9 ? "the server's CPU" : "the clients' CPU and round trips";
    const memoryRate = figureOf(context, "queue-cycle", "jobs/s", "memory");
    const figures: Figure[] = [
      { name: "jobs/s", value: rate, unit: "jobs/s" },
      { name: "server CPU", value: cpu.server * 100, unit: "% of a core" },
      { name: "server CPU per job", value: (cpu.server * elapsedMs * 1000) / jobs, unit: "µs" },
      { name: "submitter CPU", value: cpu.submit * 100, unit: "% of a core" },
      { name: "drainer CPU", value: cpu.drain * 100, unit: "% of a core" },
    ];
    const targets: Target[] = [
      target("jobs/s", rate, ">=", 0.4 * baseline, "0.4 × rpc-baseline calls/s"),
    ];
    const embeddedNote =
      `limited by ${limit}: each job costs 3 round trips (enqueue, dequeue, complete) on 2 cores shared by 3 processes`;
    let notes: string[];
    switch (context.store) {
      case "memory":
        notes = [embeddedNote];
        break;
      case "aws":
        // Against emulators a target on memory's rate would measure them: a figure only.
        figures.push(
          { name: "jobs/s vs memory", value: rate / memoryRate, unit: "× memory" },
          { name: "stand-ins CPU (bench process)", value: cpu.bench * 100, unit: "% of a core" },
        );
        notes = [
          `limited by per-job round trips to SQS and DynamoDB: ${awsCallsSentence()}, on top of the 3 RPCs`,
          `the orchestrator spends at most ${
            formatMs((cpu.server * elapsedMs) / jobs / AWS_CALLS_PER_JOB_TOTAL)
          } ms of CPU per AWS call (server CPU per job / ${AWS_CALLS_PER_JOB_TOTAL}, the RPCs' own handling included)${
            cpu.server >= 0.9 ? ", and its CPU caps the rate here" : ""
          }; the stand-ins answer in the bench process on the same ${navigator.hardwareConcurrency} cores (all processes together: ${
            Math.round((cpu.server + cpu.submit + cpu.drain + cpu.bench) * 100)
          }% of a core)`,
          `${jobs} jobs, fewer than the embedded stores' ${
            context.quick ? "1,000" : "20,000"
          }, so the run stays near a minute at the stand-ins' speed`,
          "jobs/s vs memory is a figure, not a target: a target on it would rate the emulators",
          ...(Number.isFinite(memoryRate) ? [] : [
            "jobs/s vs memory is n/a: the memory store did not run in this bench run",
          ]),
          AWS_STAND_IN_NOTE,
        ];
        break;
      default: // sqlite
        targets.push(target("jobs/s", rate, ">=", 0.6 * memoryRate, "0.6 × memory store's jobs/s"));
        notes = [embeddedNote];
    }
    return {
      name: "queue-cycle",
      store: context.store,
      inputs: {
        jobs,
        submitters: concurrency,
        drainers: concurrency,
        rpcsPerJob: 3,
        ...(aws ? { awsCallsPerJob: AWS_CALLS_PER_JOB_TOTAL } : {}),
      },
      figures,
      targets,
      notes,
    };
  } finally {
    await server.stop();
  }
}

/** Reads a process's CPU time until it exits; resolves with the last reading. */
async function sampleCpuUntilExit(read: () => Promise<number>): Promise<number> {
  let last = 0;
  for (;;) {
    const now = await read();
    if (!Number.isFinite(now)) return last;
    last = now;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function formatMs(ms: number): string {
  return Number.isFinite(ms) ? ms.toFixed(2) : "n/a";
}
