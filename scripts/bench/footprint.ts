/**
 * Scenario 7, footprint: server RSS when idle (target <= 100 MB), and after
 * many finished jobs, with the growth per 1,000 jobs. RSS also holds garbage
 * V8 has not handed back, so the store's own cost per finished job is
 * measured too, in a separate process that collects garbage before it
 * weighs the heap.
 *
 * @module
 */
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { childEnv, runAgent, startServerProcess } from "./processes.ts";
import { type ScenarioContext, type ScenarioResult, target } from "./scenario.ts";
import { percentile } from "./stats.ts";

const MB = 1024 * 1024;

export async function footprint(context: ScenarioContext): Promise<ScenarioResult> {
  const jobs = context.quick ? 2_000 : 100_000;
  const server = await startServerProcess(context.store);
  try {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const idle = await server.rssBytes();
    const common = ["--server", server.url, "--jobs", String(jobs), "--concurrency", "32"];
    await Promise.all([runAgent(["submit", ...common]), runAgent(["drain", ...common])]);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = await server.rssBytes();
    const listLatencies = await timeListJobs(server.url, context.quick ? 20 : 100);
    const listP50 = percentile(listLatencies, 50);
    const heapPerJob = await storeHeapPerJob(context.store, context.quick ? 2_000 : 20_000);
    return {
      name: "footprint",
      store: context.store,
      inputs: { finishedJobs: jobs },
      figures: [
        { name: "RSS idle", value: idle / MB, unit: "MB" },
        { name: `RSS after ${jobs} jobs`, value: after / MB, unit: "MB" },
        { name: "growth per 1,000 jobs", value: (after - idle) / MB / (jobs / 1000), unit: "MB" },
        { name: "store heap per finished job", value: heapPerJob, unit: "bytes" },
        { name: "ListJobs page of 50, p50", value: listP50, unit: "ms" },
      ],
      targets: [
        target("RSS idle", idle / MB, "<=", 100, "100 MB"),
        // The durable store's targets; the memory store holds every job in
        // RAM and scans them to list, so it only reports these.
        ...(context.store === "sqlite"
          ? [
            target(`RSS after ${jobs} jobs`, after / MB, "<=", 150, "150 MB"),
            target("ListJobs page of 50, p50", listP50, "<=", 10, "10 ms"),
          ]
          : []),
      ],
      notes: [
        "resident set size from /proc; the memory store keeps every job until the server exits",
      ],
    };
  } finally {
    await server.stop();
  }
}

/** Heap the store keeps per finished job, measured in a fresh process with forced GC. */
async function storeHeapPerJob(store: string, jobs: number): Promise<number> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./store_heap.ts", import.meta.url).pathname,
      store,
      String(jobs),
    ],
    env: childEnv(),
    clearEnv: true,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error("store heap measurement failed");
  return Number(new TextDecoder().decode(output.stdout).trim());
}

/** Times ListJobs for the newest page of 50, one call after another. */
async function timeListJobs(url: string, calls: number): Promise<number[]> {
  const clients = createAirunnerClients({ serverUrl: url });
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    await clients.jobs.listJobs({ page: 1, pageSize: 50 });
    samples.push(performance.now() - started);
  }
  return samples;
}
