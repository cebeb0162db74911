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
import { benchProcessCpuMs, runAgent, startServerProcess } from "./processes.ts";
import {
  type Figure,
  figureOf,
  type ScenarioContext,
  type ScenarioResult,
  type Target,
  target,
} from "./scenario.ts";

export async function queueCycle(context: ScenarioContext): Promise<ScenarioResult> {
  const aws = context.store === "aws";
  const jobs = aws
    ? (context.quick ? AWS_QUEUE_CYCLE_JOBS.quick : AWS_QUEUE_CYCLE_JOBS.full)
    : (context.quick ? 1_000 : 20_000);
  const concurrency = 32;
  const server = await startServerProcess(context.store, { queues: ["bench"] });
  try {
    const cpu = { server: await server.cpuMs(), submit: 0, drain: 0, bench: 0 };
    const benchCpuBefore = await benchProcessCpuMs();
    const started = performance.now();
    const agentCpu: Promise<number>[] = [];
    const common = [
      "--server",
      server.url,
      "--jobs",
      String(jobs),
      "--concurrency",
      String(concurrency),
    ];
    await Promise.all([
      runAgent(["submit", ...common], (p) => void agentCpu.push(sampleCpuUntilExit(p.cpuMs))),
      runAgent(["drain", ...common], (p) => void agentCpu.push(sampleCpuUntilExit(p.cpuMs))),
    ]);
    const elapsedMs = performance.now() - started;
    cpu.server = ((await server.cpuMs()) - cpu.server) / elapsedMs;
    cpu.bench = ((await benchProcessCpuMs()) - benchCpuBefore) / elapsedMs;
    const [submitCpuMs = Number.NaN, drainCpuMs = Number.NaN] = await Promise.all(agentCpu);
    cpu.submit = submitCpuMs / elapsedMs;
    cpu.drain = drainCpuMs / elapsedMs;
    const rate = (jobs / elapsedMs) * 1000;
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
