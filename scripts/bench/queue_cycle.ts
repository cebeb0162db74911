/**
 * Scenario 2, queue cycle (no process): jobs enqueued by 32 concurrent
 * submitters and drained by 32 claim loops that complete each job at once,
 * one RPC per operation (enqueue, dequeue, complete). Target: jobs/s >= 0.4
 * x the RPC baseline of the same run.
 *
 * @module
 */
import { runAgent, startServerProcess } from "./processes.ts";
import { figureOf, type ScenarioContext, type ScenarioResult, target } from "./scenario.ts";

export async function queueCycle(context: ScenarioContext): Promise<ScenarioResult> {
  const jobs = context.quick ? 1_000 : 20_000;
  const concurrency = 32;
  const server = await startServerProcess(context.store);
  try {
    const cpu = { server: await server.cpuMs(), submit: 0, drain: 0 };
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
    const [submitCpuMs = Number.NaN, drainCpuMs = Number.NaN] = await Promise.all(agentCpu);
    cpu.submit = submitCpuMs / elapsedMs;
    cpu.drain = drainCpuMs / elapsedMs;
    const rate = (jobs / elapsedMs) * 1000;
    const baseline = figureOf(context, "rpc-baseline", "calls/s");
    const limit = cpu.server >= 0.9 ? "the server's CPU" : "the clients' CPU and round trips";
    return {
      name: "queue-cycle",
      store: context.store,
      inputs: { jobs, submitters: concurrency, drainers: concurrency, rpcsPerJob: 3 },
      figures: [
        { name: "jobs/s", value: rate, unit: "jobs/s" },
        { name: "server CPU", value: cpu.server * 100, unit: "% of a core" },
        { name: "server CPU per job", value: (cpu.server * elapsedMs * 1000) / jobs, unit: "µs" },
        { name: "submitter CPU", value: cpu.submit * 100, unit: "% of a core" },
        { name: "drainer CPU", value: cpu.drain * 100, unit: "% of a core" },
      ],
      targets: [
        target("jobs/s", rate, ">=", 0.4 * baseline, "0.4 × rpc-baseline calls/s"),
        ...(context.store === "memory" ? [] : [
          target(
            "jobs/s",
            rate,
            ">=",
            0.6 * figureOf(context, "queue-cycle", "jobs/s", "memory"),
            "0.6 × memory store's jobs/s",
          ),
        ]),
      ],
      notes: [
        `limited by ${limit}: each job costs 3 round trips (enqueue, dequeue, complete) on 2 cores shared by 3 processes`,
      ],
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
