/**
 * Scenario 4, process jobs end to end: jobs of `true` through a real worker
 * process with --concurrency 4. Target: jobs/s >= 0.75 x the rate at which
 * Deno alone spawns `true` with concurrency 4, in the same run.
 *
 * @module
 */
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { waitForFinished } from "./follow_events.ts";
import { runAgent, startServerProcess, startWorkerProcess } from "./processes.ts";
import { type ScenarioContext, type ScenarioResult, target } from "./scenario.ts";

export async function processThroughput(context: ScenarioContext): Promise<ScenarioResult> {
  const jobs = context.quick ? 100 : 2_000;
  const concurrency = 4;
  const server = await startServerProcess(context.store);
  const worker = startWorkerProcess(server.url, concurrency, "procs");
  try {
    const clients = createAirunnerClients({ serverUrl: server.url });
    await clients.jobs.enqueueJob({ queue: "warmup", jobParams: { command: "true" } });
    const started = performance.now();
    await runAgent([
      "submit",
      "--server",
      server.url,
      "--queue",
      "procs",
      "--jobs",
      String(jobs),
      "--concurrency",
      "32",
    ]);
    const finished = await waitForFinished(clients, "procs", jobs);
    const rate = (jobs / (finished - started)) * 1000;
    const spawnRate = await denoSpawnRate(jobs, concurrency);
    return {
      name: "process-jobs",
      store: context.store,
      inputs: { jobs, command: "true", workerConcurrency: concurrency },
      figures: [
        { name: "jobs/s", value: rate, unit: "jobs/s" },
        { name: "Deno spawn rate (c=4)", value: spawnRate, unit: "processes/s" },
      ],
      targets: [target("jobs/s", rate, ">=", 0.75 * spawnRate, "0.75 × Deno spawn rate")],
      notes: [],
    };
  } finally {
    await worker.stop();
    await server.stop();
  }
}

/** Processes of `true` per second that Deno alone runs, `concurrency` at a time. */
async function denoSpawnRate(count: number, concurrency: number): Promise<number> {
  let left = count;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (left-- > 0) {
      await new Deno.Command("true", { stdin: "null", stdout: "piped", stderr: "piped" }).output();
    }
  }));
  return (count / (performance.now() - started)) * 1000;
}
