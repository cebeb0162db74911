/**
 * A load agent: one process that plays one role against a server and prints
 * its result as one JSON line. Running load in processes of their own keeps
 * the benchmark's own bookkeeping out of the measured path. Every result
 * carries `startedAtMs` and `endedAtMs`, wall-clock times (comparable across
 * processes) of the load's start and end, process start-up left out.
 *
 *   agent.ts rpc    --server URL --concurrency N --duration-ms MS
 *   agent.ts submit --server URL --queue Q --jobs N --concurrency N [--command C]
 *   agent.ts drain  --server URL --queue Q --jobs N --concurrency N
 *   agent.ts session-cycle  --server URL --queue Q --sessions N --concurrency N
 *                           --batch N --in-flight N --backlog N
 *                           --window-start EPOCH_MS --window-end EPOCH_MS
 *   agent.ts session-pickup --server URL --queue Q --samples N --warmup N
 *   agent.ts floor-pickup   --server URL --mode bare|minimal --samples N --warmup N
 *
 * The session roles are in scripts/bench/session_agent.ts, floor-pickup (against
 * scripts/bench/floor_server.ts) in scripts/bench/floor_agent.ts.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { runFloorPickup } from "./floor_agent.ts";
import { parseFloorMode } from "./floor_server.ts";
import { runSessionCycle, runSessionPickup } from "./session_agent.ts";
import { preciseNowMs } from "./stats.ts";

const { positionals, values } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    server: { type: "string" },
    queue: { type: "string", default: "bench" },
    jobs: { type: "string", default: "0" },
    concurrency: { type: "string", default: "32" },
    "duration-ms": { type: "string", default: "3000" },
    command: { type: "string", default: "true" },
    sessions: { type: "string", default: "1" },
    batch: { type: "string", default: "200" },
    "in-flight": { type: "string", default: "2" },
    backlog: { type: "string", default: "2000" },
    "window-start": { type: "string", default: "0" },
    "window-end": { type: "string", default: "0" },
    samples: { type: "string", default: "200" },
    warmup: { type: "string", default: "20" },
    mode: { type: "string", default: "minimal" },
  },
});
const clients = createAirunnerClients({ serverUrl: values.server! });
const concurrency = Number(values.concurrency);
const jobs = Number(values.jobs);

/** Runs `loops` copies of `step` until `more()` says stop; returns the calls made. */
async function load(step: () => Promise<void>, more: () => boolean): Promise<number> {
  let done = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (more()) {
      await step();
      done++;
    }
  }));
  return done;
}

const started = performance.now();
let startedAtMs = performance.timeOrigin + started;
let endedAtMs = Number.NaN;
let result: Record<string, unknown>;
switch (positionals[0]) {
  case "rpc": {
    await clients.jobs.listJobs({ queue: values.queue, pageSize: 1 });
    const end = performance.now() + Number(values["duration-ms"]);
    const t0 = performance.now();
    startedAtMs = performance.timeOrigin + t0;
    const calls = await load(
      async () => void await clients.jobs.listJobs({ queue: values.queue, pageSize: 1 }),
      () => performance.now() < end,
    );
    result = { calls, elapsedMs: performance.now() - t0 };
    endedAtMs = preciseNowMs();
    break;
  }
  case "submit": {
    let issued = 0;
    const calls = await load(
      async () =>
        void await clients.jobs.enqueueJob({
          queue: values.queue,
          jobParams: { command: values.command! },
        }),
      () => issued++ < jobs,
    );
    result = { calls, elapsedMs: performance.now() - started };
    endedAtMs = preciseNowMs();
    break;
  }
  case "drain": {
    let claimed = 0;
    let completed = 0;
    const done = new AbortController();
    let finishedAt = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (!done.signal.aborted) {
        try {
          for await (
            const res of clients.jobs.dequeueJob({ queue: values.queue, maxJobs: 1 }, {
              signal: done.signal,
            })
          ) {
            claimed++;
            await clients.jobs.completeJob({
              taskToken: res.taskToken,
              jobResult: { jobId: res.job!.jobId, success: true },
            });
            if (++completed >= jobs) {
              finishedAt = performance.now();
              done.abort();
            }
          }
        } catch (error) {
          if (!done.signal.aborted) throw error;
        }
      }
    }));
    result = { claimed, completed, elapsedMs: finishedAt - started };
    endedAtMs = performance.timeOrigin + finishedAt;
    break;
  }
  case "session-cycle": {
    const cycle = await runSessionCycle({
      serverUrl: values.server!,
      queue: values.queue!,
      sessions: Number(values.sessions),
      concurrency,
      batch: Number(values.batch),
      inFlight: Number(values["in-flight"]),
      backlog: Number(values.backlog),
      windowStartMs: Number(values["window-start"]),
      windowEndMs: Number(values["window-end"]),
    });
    ({ startedAtMs, endedAtMs } = cycle);
    result = { ...cycle };
    break;
  }
  case "session-pickup": {
    const pickup = await runSessionPickup({
      serverUrl: values.server!,
      queue: values.queue!,
      samples: Number(values.samples),
      warmup: Number(values.warmup),
    });
    result = pickup;
    endedAtMs = preciseNowMs();
    break;
  }
  case "floor-pickup": {
    result = await runFloorPickup({
      serverUrl: values.server!,
      mode: parseFloorMode(values.mode),
      samples: Number(values.samples),
      warmup: Number(values.warmup),
    });
    endedAtMs = preciseNowMs();
    break;
  }
  default:
    throw new Error(`unknown agent role ${positionals[0]}`);
}
console.log(JSON.stringify({ ...result, startedAtMs, endedAtMs }));
Deno.exit(0);
