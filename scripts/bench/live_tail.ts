/**
 * Scenario 5, live tail latency. A job prints a timestamped line every
 * 500 ms; a follower measures print-to-receive delay (target p50 <= 150 ms).
 * A job that prints continuously (a line every millisecond): p99 <= the
 * batch flush interval + 200 ms, with batches still full (mean items per
 * batch reported).
 *
 * @module
 */
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { DEFAULT_FLUSH_INTERVAL_SECONDS } from "../../src/server/execution_config.ts";
import { followEvents, outputsOf } from "./follow_events.ts";
import { startServerProcess, startWorkerProcess } from "./processes.ts";
import { type ScenarioContext, type ScenarioResult, target } from "./scenario.ts";
import { mean, percentile, preciseNowMs } from "./stats.ts";

/** A job that prints `count` lines of its precise wall time, `intervalMs` apart. */
function timestampPrinter(count: number, intervalMs: number) {
  const script = `for (let i = 0; i < ${count}; i++) {
    console.log(performance.timeOrigin + performance.now());
    if (${intervalMs} > 0) await new Promise((r) => setTimeout(r, ${intervalMs}));
  }`;
  return { command: Deno.execPath(), args: ["eval", script] };
}

export async function liveTail(context: ScenarioContext): Promise<ScenarioResult> {
  const slowLines = context.quick ? 4 : 20;
  const fastLines = context.quick ? 1_000 : 10_000;
  const server = await startServerProcess(context.store);
  const worker = startWorkerProcess(server.url, 1, "tail");
  try {
    const clients = createAirunnerClients({ serverUrl: server.url });
    const slow = await measure(clients, timestampPrinter(slowLines, 500));
    const fast = await measure(clients, timestampPrinter(fastLines, 1));
    const flushMs = DEFAULT_FLUSH_INTERVAL_SECONDS * 1000;
    return {
      name: "live-tail",
      store: context.store,
      inputs: { slowLines, slowIntervalMs: 500, fastLines, fastIntervalMs: 1 },
      figures: [
        { name: "every 500 ms p50", value: percentile(slow.latencies, 50), unit: "ms" },
        { name: "every 500 ms p99", value: percentile(slow.latencies, 99), unit: "ms" },
        { name: "continuous p50", value: percentile(fast.latencies, 50), unit: "ms" },
        { name: "continuous p99", value: percentile(fast.latencies, 99), unit: "ms" },
        { name: "continuous items/batch", value: mean(fast.itemsPerBatch), unit: "items" },
      ],
      targets: [
        target("every 500 ms p50", percentile(slow.latencies, 50), "<=", 150, "150 ms"),
        target(
          "continuous p99",
          percentile(fast.latencies, 99),
          "<=",
          flushMs + 200,
          "flush interval + 200 ms",
        ),
      ],
      notes: [
        "latency = receive time in the follower - time the job printed the line (both wall clocks of this host)",
      ],
    };
  } finally {
    await worker.stop();
    await server.stop();
  }
}

async function measure(
  clients: ReturnType<typeof createAirunnerClients>,
  jobParams: { command: string; args: string[] },
) {
  const { jobId } = await clients.jobs.enqueueJob({ queue: "tail", jobParams });
  const latencies: number[] = [];
  const itemsPerBatch: number[] = [];
  const decoder = new TextDecoder();
  let carry = "";
  await followEvents(clients, jobId, (event) => {
    const outputs = outputsOf(event);
    if (outputs.length === 0) return;
    const receivedAt = preciseNowMs();
    itemsPerBatch.push(outputs.length);
    for (const chunk of outputs) {
      const lines = (carry + decoder.decode(chunk, { stream: true })).split("\n");
      carry = lines.pop() ?? "";
      for (const line of lines) latencies.push(receivedAt - Number(line));
    }
  });
  return { latencies, itemsPerBatch };
}
