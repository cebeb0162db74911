/**
 * Scenario 2c, the pickup floor (memory only): the session pickup of the
 * same run, read against the lowest pickup this machine and runtime allow.
 * The same sample as the session pickup (a stream waits on an idle queue,
 * one unary call enqueues a job over HTTP/1.1, the sample is the time until
 * the job's pushed message has arrived on the HTTP/2 stream, timed in one
 * process on one clock, 2 ms apart) is taken against the two servers of
 * scripts/bench/floor_server.ts:
 *
 * - `bare HTTP`: two HTTP hops and nothing else;
 * - `minimal`: those hops plus what any job runner must do (decode,
 *   validate, store, lease, encode, decode) with airunner's messages and
 *   memory store, and none of Connect, interceptors or session bookkeeping.
 *
 * No targets: these are yardsticks. If `minimal` is above the session
 * pickup target, no implementation over Deno's HTTP reaches the target on
 * this machine.
 *
 * @module
 */
import { freePort, waitForHealth } from "../airunner_argv.ts";
import type { FloorMode } from "./floor_server.ts";
import { childEnv, runAgent, startScriptProcess } from "./processes.ts";
import { type Figure, figureOf, type ScenarioContext, type ScenarioResult } from "./scenario.ts";
import { SESSION_CYCLE_SCENARIO } from "./session_cycle.ts";
import { percentile } from "./stats.ts";

/** The scenario's name in the table (and in `--only`). */
export const PICKUP_FLOOR_SCENARIO = "queue-cycle (pickup floor)";
/** Where the floor is measured: its minimal server uses the memory store. */
export const PICKUP_FLOOR_STORES: readonly string[] = ["memory"];
/** Why it is skipped elsewhere. */
export const PICKUP_FLOOR_SKIP_REASON =
  "measured once per run, on the memory store: it is a yardstick of the machine and runtime, and its minimal server keeps jobs in memory";

const MODES: readonly { mode: FloorMode; label: string }[] = [
  { mode: "bare", label: "bare HTTP" },
  { mode: "minimal", label: "minimal" },
];

export async function pickupFloor(context: ScenarioContext): Promise<ScenarioResult> {
  const samples = context.quick ? 30 : 200;
  const warmup = context.quick ? 10 : 30;
  const figures: Figure[] = [];
  const p50s = new Map<FloorMode, number>();
  for (const { mode, label } of MODES) {
    const taken = await measureFloor(mode, samples, warmup);
    p50s.set(mode, percentile(taken, 50));
    figures.push(
      { name: `${label} pickup p50`, value: percentile(taken, 50), unit: "ms" },
      { name: `${label} pickup p99`, value: percentile(taken, 99), unit: "ms" },
    );
  }
  const session = figureOf(context, SESSION_CYCLE_SCENARIO, "pickup p50");
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
      ...(Number.isFinite(session)
        ? [
          `airunner's session pickup p50 in this run: ${ms(session)}, ${
            ms(session - minimal)
          } over minimal (Connect on both sides, interceptors, session credits and acks)`,
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
  ], childEnv());
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(url);
    const result = await runAgent<{ samples: number[] }>([
      "floor-pickup",
      "--server",
      url,
      "--mode",
      mode,
      "--samples",
      String(samples),
      "--warmup",
      String(warmup),
    ]);
    return result.samples;
  } finally {
    await server.stop();
  }
}
