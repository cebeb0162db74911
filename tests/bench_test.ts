/**
 * The benchmark must never rot: the suite runs `deno task bench --quick` and
 * checks that every scenario produced every figure and target (not their
 * values, which belong to the machine).
 */
import assert from "node:assert/strict";
import { selected } from "../scripts/bench/main.ts";
import type { BenchReport } from "../scripts/bench/report.ts";

/** The client commands cli-startup times, as named in its figures. */
const CLI_STARTUP_COMMANDS = [
  "--version",
  "--help",
  "submit -- true",
  "get",
  "list",
  "cancel",
  "submit --follow -- true",
];

const EXPECTED: Record<string, { figures: string[]; targets: string[] }> = {
  "rpc-baseline": { figures: ["calls/s", "server CPU"], targets: [] },
  "queue-cycle": {
    figures: ["jobs/s", "server CPU", "server CPU per job", "submitter CPU", "drainer CPU"],
    targets: ["jobs/s"],
  },
  // Memory's jobs/s target is on the RPC baseline, sqlite's on memory's session jobs/s.
  "queue-cycle (session)": {
    figures: [
      "jobs/s",
      "server CPU",
      "server CPU per job",
      "agent CPU",
      "agent CPU per job",
      "pickup p50",
      "pickup p99",
    ],
    targets: ["jobs/s", "pickup p50"],
  },
  // A yardstick of the machine and runtime: figures, no targets.
  "queue-cycle (pickup floor)": {
    figures: [
      "bare HTTP pickup p50",
      "bare HTTP pickup p99",
      "minimal pickup p50",
      "minimal pickup p99",
    ],
    targets: [],
  },
  "telemetry": {
    figures: [
      "jobs/s off",
      "jobs/s on",
      "ratio on/off",
      "server CPU per job off",
      "server CPU per job on",
      "OTLP requests (on runs)",
      "OTLP bytes (on runs)",
    ],
    targets: ["ratio on/off"],
  },
  "time-to-start": {
    figures: ["pickup p50", "pickup p99", "start p50", "start p99", "spawn p50 (Deno, true)"],
    targets: ["pickup p50", "pickup p99", "start p50"],
  },
  "process-jobs": { figures: ["jobs/s", "Deno spawn rate (c=4)"], targets: ["jobs/s"] },
  "live-tail": {
    figures: [
      "every 500 ms p50",
      "every 500 ms p99",
      "continuous p50",
      "continuous p99",
      "continuous items/batch",
    ],
    targets: ["every 500 ms p50", "continuous p99"],
  },
  "output-throughput": {
    figures: [
      "MB/s through airunner",
      "MB/s local pipe",
      "ratio",
      "bytes intact",
      "worker peak RSS",
    ],
    targets: ["ratio", "bytes intact", "worker peak RSS"],
  },
  "footprint": {
    figures: [
      "RSS idle",
      "RSS after 2000 jobs",
      "growth per 1,000 jobs",
      "store heap per finished job",
      "ListJobs page of 50, p50",
    ],
    targets: ["RSS idle"],
  },
  "cli-startup": {
    figures: [
      "empty script p50",
      ...CLI_STARTUP_COMMANDS.map((c) => `${c} p50`),
      "server ready p50",
      "worker ready p50",
    ],
    targets: [
      ...CLI_STARTUP_COMMANDS.map((c) => `${c} p50`),
      "server ready p50",
      "worker ready p50",
    ],
  },
};

/**
 * Figures a scenario adds when the machine allows: cli-startup's compiled
 * binary is measured only where `deno compile` can run.
 */
const OPTIONAL_FIGURE_PREFIX: Record<string, string> = { "cli-startup": "compiled " };

/** Targets the sqlite store has on top of the common ones. */
const SQLITE_EXTRA_TARGETS: Record<string, string[]> = {
  "queue-cycle": ["jobs/s"],
  "footprint": ["RSS after 2000 jobs", "ListJobs page of 50, p50"],
};

/** The scenarios the AWS store runs (against in-process stand-ins); the rest are skipped. */
const AWS_SCENARIOS = ["rpc-baseline", "queue-cycle", "time-to-start"];

/** Scenarios that run on some stores only; skipped, with a reason, on the others. */
const ONLY_ON: Record<string, string[]> = {
  "telemetry": ["memory"],
  "queue-cycle (pickup floor)": ["memory"],
  "cli-startup": ["memory"],
};

/** Figures the AWS store reports on top of the common ones. */
const AWS_EXTRA_FIGURES: Record<string, string[]> = {
  "queue-cycle": ["jobs/s vs memory", "stand-ins CPU (bench process)"],
};

Deno.test("deno task bench --quick reports every scenario's figures and targets", async () => {
  const out = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["task", "bench", "--quick", "--out", out],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    const report = JSON.parse(await Deno.readTextFile(out)) as BenchReport;
    assert.equal(report.quick, true);
    const stores = ["memory", "sqlite", "aws"];
    const runs = (name: string, store: string) =>
      (ONLY_ON[name] ?? stores).includes(store) &&
      (store !== "aws" || AWS_SCENARIOS.includes(name));
    const where = (want: boolean) =>
      stores.flatMap((store) =>
        Object.keys(EXPECTED).filter((name) => runs(name, store) === want).map((name) =>
          `${name}@${store}`
        )
      );
    assert.deepEqual(report.scenarios.map((s) => `${s.name}@${s.store}`), where(true));
    assert.deepEqual(report.skipped.map((s) => `${s.name}@${s.store}`), where(false));
    for (const skipped of report.skipped) assert.ok(skipped.reason.length > 0, "says why");
    assert.match(stdout, /^skipped:$/m);
    for (const scenario of report.scenarios) {
      const expected = EXPECTED[scenario.name]!;
      const where = `${scenario.name} (${scenario.store})`;
      const extraFigures = scenario.store === "aws" ? AWS_EXTRA_FIGURES[scenario.name] ?? [] : [];
      const optional = OPTIONAL_FIGURE_PREFIX[scenario.name];
      assert.deepEqual(
        scenario.figures.map((f) => f.name).filter((n) =>
          optional === undefined || !n.startsWith(optional)
        ),
        [...expected.figures, ...extraFigures],
        where,
      );
      for (const figure of scenario.figures) {
        assert.ok(Number.isFinite(figure.value), `${where}: ${figure.name} is a number`);
      }
      const extra = scenario.store === "sqlite" ? SQLITE_EXTRA_TARGETS[scenario.name] ?? [] : [];
      assert.deepEqual(
        scenario.targets.map((t) => t.figure).sort(),
        [...expected.targets, ...extra].sort(),
        where,
      );
      assert.ok(Object.keys(scenario.inputs).length > 0, `${scenario.name} states its inputs`);
      assert.match(
        stdout,
        new RegExp(`^${RegExp.escape(scenario.name)}\\s+${scenario.store}`, "m"),
        "in the table",
      );
    }
    assert.match(stdout, /\b(pass|SHORT)\b/);
  } finally {
    await Deno.remove(out);
  }
});

Deno.test("--only selects a scenario by name, and its variants by the name before the parenthesis", () => {
  assert.ok(selected("queue-cycle", undefined));
  assert.ok(selected("queue-cycle", ["queue-cycle"]));
  assert.ok(selected("queue-cycle (session)", ["rpc-baseline", "queue-cycle"]));
  assert.ok(selected("queue-cycle (pickup floor)", ["queue-cycle"]));
  assert.ok(selected("queue-cycle (session)", ["queue-cycle (session)"]));
  assert.ok(!selected("queue-cycle", ["queue-cycle (session)"]));
  assert.ok(!selected("queue-cycle (session)", ["queue"]));
});
