/**
 * `deno task bench`: starts real airunner processes on 127.0.0.1, runs the
 * eleven scenarios on each store that they run on, prints a table and writes the figures as
 * JSON (`--out FILE`). `--quick` runs a small version of every scenario in
 * seconds; the test suite runs it so the benchmark never rots.
 *
 * The AWS store (`airunner orchestrator`) runs against in-process stand-ins
 * for SQS and DynamoDB, so only the scenarios in {@link AWS_SCENARIOS} run on
 * it; the others are listed as skipped, with the reason. The telemetry
 * scenario, the pickup floor and the CLI's start-up run on the memory store
 * only ({@link TELEMETRY_STORES}, {@link PICKUP_FLOOR_STORES},
 * {@link CLI_STARTUP_STORES}).
 *
 *   deno task bench [--quick] [--out FILE] [--store memory,sqlite,aws] [--only NAME,...]
 *
 * `--only queue-cycle` runs the three queue-cycle scenarios (unary, session and
 * the pickup floor);
 * `--only "queue-cycle (session)"` the session one alone.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  CLI_STARTUP_SCENARIO,
  CLI_STARTUP_SKIP_REASON,
  CLI_STARTUP_STORES,
  cliStartup,
} from "./cli_startup.ts";
import { footprint } from "./footprint.ts";
import { liveTail } from "./live_tail.ts";
import { outputThroughput } from "./output_throughput.ts";
import { processThroughput } from "./process_throughput.ts";
import { stopAwsStandIns } from "./processes.ts";
import {
  PICKUP_FLOOR_SCENARIO,
  PICKUP_FLOOR_SKIP_REASON,
  PICKUP_FLOOR_STORES,
  pickupFloor,
} from "./pickup_floor.ts";
import { queueCycle } from "./queue_cycle.ts";
import { type BenchReport, formatTable } from "./report.ts";
import { rpcBaseline } from "./rpc_baseline.ts";
import type { ScenarioContext, ScenarioResult } from "./scenario.ts";
import { queueCycleSession, SESSION_CYCLE_SCENARIO } from "./session_cycle.ts";
import {
  TELEMETRY_SKIP_REASON,
  TELEMETRY_STORES,
  telemetryOverhead,
} from "./telemetry_overhead.ts";
import { timeToStart } from "./time_to_start.ts";

/** Every scenario, in the order they run (later ones compare with earlier ones). */
export const SCENARIOS = {
  "rpc-baseline": rpcBaseline,
  "queue-cycle": queueCycle,
  [SESSION_CYCLE_SCENARIO]: queueCycleSession,
  [PICKUP_FLOOR_SCENARIO]: pickupFloor,
  "telemetry": telemetryOverhead,
  "time-to-start": timeToStart,
  "process-jobs": processThroughput,
  "live-tail": liveTail,
  "output-throughput": outputThroughput,
  "footprint": footprint,
  [CLI_STARTUP_SCENARIO]: cliStartup,
} as const satisfies Record<string, (context: ScenarioContext) => Promise<ScenarioResult>>;

/** Stores the benchmark can run on (all of them by default). */
export const BENCH_STORES = ["memory", "sqlite", "aws"] as const;

/**
 * The scenarios that run on the AWS store. rpc-baseline is the yardstick the
 * queue figures are compared with.
 */
export const AWS_SCENARIOS: readonly string[] = ["rpc-baseline", "queue-cycle", "time-to-start"];

/** Why the other scenarios do not run on the AWS store. */
export const AWS_SKIP_REASON =
  "not run on the AWS store: its SQS and DynamoDB stand-ins are single-threaded JavaScript " +
  "emulators inside the bench process, so process, output and footprint figures would " +
  "measure the emulators, not airunner";

/**
 * Whether `--only` selects scenario `name`: by its name, or by the name
 * before a parenthesis (`queue-cycle` selects `queue-cycle (session)` too).
 */
export function selected(name: string, only: readonly string[] | undefined): boolean {
  if (only === undefined) return true;
  return only.includes(name) || only.some((o) => name.startsWith(`${o} (`));
}

/** Why `name` does not run on `store`, or undefined when it does. */
export function skipReason(name: string, store: string): string | undefined {
  if (name === "telemetry" && !TELEMETRY_STORES.includes(store)) return TELEMETRY_SKIP_REASON;
  if (name === PICKUP_FLOOR_SCENARIO && !PICKUP_FLOOR_STORES.includes(store)) {
    return PICKUP_FLOOR_SKIP_REASON;
  }
  if (name === CLI_STARTUP_SCENARIO && !CLI_STARTUP_STORES.includes(store)) {
    return CLI_STARTUP_SKIP_REASON;
  }
  if (store === "aws" && !AWS_SCENARIOS.includes(name)) return AWS_SKIP_REASON;
  return undefined;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      store: { type: "string", default: BENCH_STORES.join(",") },
      only: { type: "string" },
    },
  });
  const stores = values.store.split(",");
  const only = values.only?.split(",");
  for (const store of stores) {
    if (!(BENCH_STORES as readonly string[]).includes(store)) {
      console.error(`bench: unknown store "${store}" (known: ${BENCH_STORES.join(", ")})`);
      Deno.exit(2);
    }
  }
  const report: BenchReport = {
    startedAt: new Date().toISOString(),
    quick: values.quick,
    machine: {
      cores: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
      os: `${Deno.build.os}-${Deno.build.arch}`,
    },
    scenarios: [],
    skipped: [],
  };
  const earlier = new Map<string, ScenarioResult>();
  try {
    for (const store of stores) {
      for (const [name, run] of Object.entries(SCENARIOS)) {
        if (!selected(name, only)) continue;
        const reason = skipReason(name, store);
        if (reason !== undefined) {
          console.error(`bench: ${name} (${store}) skipped (see "skipped:" in the report)`);
          report.skipped.push({ name, store, reason });
          continue;
        }
        console.error(`bench: ${name} (${store})...`);
        const result = await run({
          store,
          quick: values.quick,
          earlier,
          progress: (message) => console.error(`bench: ${name}: ${message}`),
        });
        earlier.set(`${name}@${store}`, result);
        report.scenarios.push(result);
      }
    }
  } finally {
    await stopAwsStandIns();
  }
  console.log(formatTable(report));
  if (values.out !== undefined) {
    await Deno.writeTextFile(values.out, JSON.stringify(report, null, 2) + "\n");
    console.error(`bench: figures written to ${values.out}`);
  }
}
