/**
 * Scenario 6, output throughput: one job writes about 200 MB to stdout
 * (`seq`); every byte must arrive in order (checked by SHA-256 against the
 * same command run locally). Reported: MB/s through airunner, and its ratio
 * to Deno reading the same command's output through a pipe (target >= 0.3).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { followEvents, outputsOf } from "./follow_events.ts";
import { startServerProcess, startWorkerProcess } from "./processes.ts";
import { type ScenarioContext, type ScenarioResult, target } from "./scenario.ts";

export async function outputThroughput(context: ScenarioContext): Promise<ScenarioResult> {
  const lastNumber = context.quick ? 700_000 : 25_000_000;
  const command = { command: "seq", args: ["1", String(lastNumber)] };
  const local = await readLocally(command.command, command.args);
  const server = await startServerProcess(context.store);
  const worker = startWorkerProcess(server.url, 1, "output");
  try {
    const clients = createAirunnerClients({ serverUrl: server.url });
    const hash = createHash("sha256");
    let bytes = 0;
    let peakWorkerRss = await worker.rssBytes();
    const sampling = setInterval(async () => {
      peakWorkerRss = Math.max(peakWorkerRss, await worker.rssBytes());
    }, 100);
    const started = performance.now();
    const { jobId } = await clients.jobs.enqueueJob({ queue: "output", jobParams: command });
    await followEvents(clients, jobId, (event) => {
      for (const chunk of outputsOf(event)) {
        hash.update(chunk);
        bytes += chunk.byteLength;
      }
    });
    const elapsedMs = performance.now() - started;
    clearInterval(sampling);
    const intact = hash.digest("hex") === local.sha256 && bytes === local.bytes;
    const rate = bytes / 1e6 / (elapsedMs / 1000);
    return {
      name: "output-throughput",
      store: context.store,
      inputs: { command: `seq 1 ${lastNumber}`, megabytes: Math.round(local.bytes / 1e6) },
      figures: [
        { name: "MB/s through airunner", value: rate, unit: "MB/s" },
        { name: "MB/s local pipe", value: local.rate, unit: "MB/s" },
        { name: "ratio", value: rate / local.rate, unit: "×" },
        { name: "bytes intact", value: intact ? 1 : 0, unit: "1 = yes" },
        { name: "worker peak RSS", value: peakWorkerRss / (1024 * 1024), unit: "MB" },
      ],
      targets: [
        target("ratio", rate / local.rate, ">=", 0.3, "0.3 × local pipe"),
        target("bytes intact", intact ? 1 : 0, ">=", 1, "every byte, in order"),
        target("worker peak RSS", peakWorkerRss / (1024 * 1024), "<=", 200, "200 MB"),
      ],
      notes: ["time from EnqueueJob sent to the follower's last byte"],
    };
  } finally {
    await worker.stop();
    await server.stop();
  }
}

async function readLocally(command: string, args: string[]) {
  const hash = createHash("sha256");
  let bytes = 0;
  const started = performance.now();
  const child = new Deno.Command(command, { args, stdout: "piped", stderr: "null" }).spawn();
  for await (const chunk of child.stdout) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  await child.status;
  const seconds = (performance.now() - started) / 1000;
  return { bytes, sha256: hash.digest("hex"), rate: bytes / 1e6 / seconds };
}
