/**
 * Scenario 2c, the pickup floor (memory only): the session pickup of the
 * same run, read against the lowest pickup this machine allows with the
 * pieces airunner is built from (Deno.serve, Deno's fetch, protobuf-es,
 * airunner's memory store). The session pickup's sample (a stream waits on
 * an idle queue, one unary call enqueues a job over HTTP/1.1, the sample is
 * the time until the job's pushed message is decoded off the HTTP/2 stream,
 * timed in one process on one clock, 2 ms apart) is taken against the two
 * servers of scripts/bench/floor_server.ts:
 *
 * - `bare HTTP`: two HTTP hops and no work in the handlers;
 * - `minimal`: those hops plus airunner's work between them (protobuf
 *   decode and encode, validation, the memory store's enqueue and lease,
 *   with its job id and task-token MAC), and none of Connect, interceptors
 *   or session bookkeeping.
 *
 * No targets: these are yardsticks. Where `minimal` is at or above the
 * session pickup target, airunner cannot meet that target on this machine
 * by trimming its own layers; a different transport or runtime would have to.
 *
 * @module
 */
import { freePort, waitForHealth } from "../airunner_argv.ts";
import type { FloorMode } from "./floor_server.ts";
import { AIRUNNER_RUN_FLAGS } from "../airunner_argv.ts";
import { childEnv, runPickupAgent, startScriptProcess } from "./processes.ts";
import { type Figure, figureOf, type ScenarioContext, type ScenarioResult } from "./scenario.ts";
import { SESSION_CYCLE_SCENARIO } from "./session_cycle.ts";
import { percentile } from "./stats.ts";

/** The scenario's name in the table (and in `--only`). */
export const PICKUP_FLOOR_SCENARIO = "queue-cycle (pickup floor)";
/** Where the floor is measured: its minimal server uses the memory store. */
export const PICKUP_FLOOR_STORES: readonly string[] = ["memory"];
/** Why it is skipped elsewhere. */
export const PICKUP_FLOOR_SKIP_REASON =
  "runs on the memory store only: it measures the machine and runtime, not a store, and its minimal server keeps jobs in memory";

const MODES: readonly { mode: FloorMode; label: string }[] = [
  { mode: "bare", label: "bare HTTP" },
  { mode: "minimal", label: "minimal" },
];

/** Runs the scenario: both floor servers, one after the other. */
export async function pickupFloor(context: ScenarioContext): Promise<ScenarioResult> {
  const samples = context.quick ? 30 : 200;
  const warmup = context.quick ? 10 : 30;
  const figures: Figure[] = [];
  const p50s = new Map<FloorMode, number>();
  for (const { mode, label } of MODES) {
    const taken = await measureFloor(mode, samples, warmup);
    const p50 = percentile(taken, 50);
    p50s.set(mode, p50);
    figures.push(
      { name: `${label} pickup p50`, value: p50, unit: "ms" },
      { name: `${label} pickup p99`, value: percentile(taken, 99), unit: "ms" },
    );
  }
  const session = figureOf(context, SESSION_CYCLE_SCENARIO, "pickup p50");
  const bare = p50s.get("bare")!;
  const minimal = p50s.get("minimal")!;
  const ms = (value: number) => `${value.toFixed(2)} ms`;
  return {
    name: PICKUP_FLOOR_SCENARIO,
    store: context.store,
    inputs: { samples, warmup, gapMs: 2 },
    figures,
    targets: [],
    notes: [
      "pickup as in queue-cycle (session): unary enqueue over HTTP/1.1 sent -> pushed message decoded from an HTTP/2 stream, one process, one clock, idle queue",
      "bare HTTP: Deno.serve and fetch with no work in the handlers; minimal: plus protobuf decode and encode, validation, memory store enqueue and lease (scripts/bench/floor_server.ts)",
      `airunner's work between the hops, without Connect: ${ms(minimal - bare)} (minimal - bare)`,
      ...(Number.isFinite(session)
        ? [
          `airunner's session pickup p50 in this run: ${ms(session)}, ${
            ms(session - minimal)
          } over minimal (Connect framing and stream handling on both sides, interceptors, the session's lease step)`,
        ]
        : ["run queue-cycle (session) on memory in the same run to compare (--only queue-cycle)"]),
    ],
  };
}

/** Pickup samples (ms) against a floor server of `mode`. */
async function measureFloor(mode: FloorMode, samples: number, warmup: number): Promise<number[]> {
  const port = freePort();
  const server = startScriptProcess(new URL("./floor_server.ts", import.meta.url), [
    "--port",
    String(port),
    "--mode",
    mode,
  ], {
    env: childEnv(),
    // The same young generation as airunner's server, so neither collects more often.
    denoFlags: AIRUNNER_RUN_FLAGS.filter((flag) => flag.startsWith("--v8-flags=")),
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(url);
    return await runPickupAgent("floor-pickup", url, { samples, warmup }, ["--mode", mode]);
  } finally {
    await server.stop();
  }
}
