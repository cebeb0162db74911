/**
 * Scenario 1, RPC baseline: the rate of a trivial unary call (ListJobs on an
 * empty queue) with airunner's own client at concurrency 32. Queue figures
 * are compared with it. On the AWS store each call is also one DynamoDB
 * Query (the queue index), so it is that store's yardstick, not memory's.
 *
 * @module
 */
import { AWS_STAND_IN_NOTE } from "./aws.ts";
import { runAgent, startServerProcess } from "./processes.ts";
import type { ScenarioContext, ScenarioResult } from "./scenario.ts";

export async function rpcBaseline(context: ScenarioContext): Promise<ScenarioResult> {
  const durationMs = context.quick ? 500 : 5_000;
  const concurrency = 32;
  const server = await startServerProcess(context.store);
  try {
    const cpuBefore = await server.cpuMs();
    const { calls, elapsedMs } = await runAgent<{ calls: number; elapsedMs: number }>([
      "rpc",
      "--server",
      server.url,
      "--concurrency",
      String(concurrency),
      "--duration-ms",
      String(durationMs),
    ]);
    const serverCpu = ((await server.cpuMs()) - cpuBefore) / elapsedMs;
    return {
      name: "rpc-baseline",
      store: context.store,
      inputs: { call: "ListJobs (empty queue)", concurrency, durationMs },
      figures: [
        { name: "calls/s", value: (calls / elapsedMs) * 1000, unit: "calls/s" },
        { name: "server CPU", value: serverCpu * 100, unit: "% of a core" },
      ],
      targets: [],
      notes: [
        serverCpu < 0.9
          ? "the client process, not the server, limits this rate (server below 90% of a core)"
          : "the server's CPU limits this rate",
        ...(context.store === "aws"
          ? [
            "on the AWS store each ListJobs is one DynamoDB Query on the jobs table's queue index (empty here)",
            AWS_STAND_IN_NOTE,
          ]
          : []),
      ],
    };
  } finally {
    await server.stop();
  }
}
