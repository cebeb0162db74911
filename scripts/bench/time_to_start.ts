/**
 * Scenario 3, time to start: with an idle worker, jobs of `true` submitted
 * one after another. Pickup (EnqueueJob sent -> a worker holds the job) is
 * timed with a claim loop in this process, on the same clock; start
 * (EnqueueJob sent -> PROCESS_START received by a follower) with a real
 * `airunner worker` process. Targets: pickup p50 <= 2 ms and p99 <= 10 ms;
 * start p50 <= the raw spawn latency of `true` from Deno + 3 ms. The AWS
 * store keeps the same targets: they say how far it is from the embedded
 * stores, against stand-ins faster per call than real AWS.
 *
 * @module
 */
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { AWS_PICKUP_NOTE, AWS_STAND_IN_NOTE } from "./aws.ts";
import { EventType, followEvents, waitForFinished } from "./follow_events.ts";
import { startServerProcess, startWorkerProcess } from "./processes.ts";
import { type ScenarioContext, type ScenarioResult, target } from "./scenario.ts";
import { percentile } from "./stats.ts";

export async function timeToStart(context: ScenarioContext): Promise<ScenarioResult> {
  const jobs = context.quick ? 20 : 300;
  const server = await startServerProcess(context.store, { queues: ["pickup", "start"] });
  const worker = startWorkerProcess(server.url, 1, "start");
  try {
    const clients = createAirunnerClients({ serverUrl: server.url });

    const pickups: number[] = [];
    for (let i = 0; i < jobs; i++) {
      const claiming = (async () => {
        for await (
          const res of clients.jobs.dequeueJob({ queue: "pickup" }, { timeoutMs: 10_000 })
        ) {
          const heldAt = performance.now();
          await clients.jobs.completeJob({
            taskToken: res.taskToken,
            jobResult: { jobId: res.job!.jobId, success: true },
          });
          return heldAt;
        }
        throw new Error("no job arrived");
      })();
      await new Promise((resolve) => setTimeout(resolve, 2)); // the claim is waiting
      const sentAt = performance.now();
      await clients.jobs.enqueueJob({ queue: "pickup", jobParams: { command: "true" } });
      pickups.push((await claiming) - sentAt);
    }

    // Warm the worker up: its first job pays for code loading.
    await clients.jobs.enqueueJob({ queue: "start", jobParams: { command: "true" } });
    await waitForFinished(clients, "start", 1);
    const starts: number[] = [];
    for (let i = 0; i < jobs; i++) {
      const sentAt = performance.now();
      const { jobId } = await clients.jobs.enqueueJob({
        queue: "start",
        jobParams: { command: "true" },
      });
      await followEvents(clients, jobId, (event, arrivedMs) => {
        if (event.eventType === EventType.PROCESS_START) starts.push(arrivedMs - sentAt);
      });
    }

    const spawns = await measureSpawnLatency(jobs);
    const spawnP50 = percentile(spawns, 50);
    const figures = {
      pickupP50: percentile(pickups, 50),
      pickupP99: percentile(pickups, 99),
      startP50: percentile(starts, 50),
      startP99: percentile(starts, 99),
    };
    return {
      name: "time-to-start",
      store: context.store,
      inputs: { jobs, command: "true", workerConcurrency: 1 },
      figures: [
        { name: "pickup p50", value: figures.pickupP50, unit: "ms" },
        { name: "pickup p99", value: figures.pickupP99, unit: "ms" },
        { name: "start p50", value: figures.startP50, unit: "ms" },
        { name: "start p99", value: figures.startP99, unit: "ms" },
        { name: "spawn p50 (Deno, true)", value: spawnP50, unit: "ms" },
      ],
      targets: [
        target("pickup p50", figures.pickupP50, "<=", 2, "2 ms"),
        target("pickup p99", figures.pickupP99, "<=", 10, "10 ms"),
        target("start p50", figures.startP50, "<=", spawnP50 + 3, "spawn p50 + 3 ms"),
      ],
      notes: [
        "pickup: EnqueueJob sent -> DequeueJob answered, timed in one process; start: EnqueueJob sent -> PROCESS_START received by a follower, with a real worker process",
        ...(context.store === "aws"
          ? [
            "the targets are the embedded stores'; a store making several SQS and DynamoDB calls per job is not expected to meet them on real AWS",
            AWS_PICKUP_NOTE,
            AWS_STAND_IN_NOTE,
          ]
          : []),
      ],
    };
  } finally {
    await worker.stop();
    await server.stop();
  }
}

/** How long Deno takes to spawn `true`, in ms per spawn (the call, not the run). */
async function measureSpawnLatency(count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const child = new Deno.Command("true", { stdin: "null", stdout: "null", stderr: "null" })
      .spawn();
    samples.push(performance.now() - started);
    await child.status;
  }
  return samples;
}
