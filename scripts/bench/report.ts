/**
 * The benchmark's output: a table for people (stdout) and the same figures
 * as JSON for machines.
 *
 * @module
 */
import type { ScenarioResult } from "./scenario.ts";

/** The JSON document `deno task bench --out FILE` writes. */
export interface BenchReport {
  readonly startedAt: string;
  readonly quick: boolean;
  readonly machine: { readonly cores: number; readonly deno: string; readonly os: string };
  readonly scenarios: ScenarioResult[];
  /** Scenarios not run on a store, and why. */
  readonly skipped: SkippedScenario[];
}

/** A scenario that does not run on a store. */
export interface SkippedScenario {
  readonly name: string;
  readonly store: string;
  readonly reason: string;
}

/** Formats a number for the table: 3 significant digits, thousands separated. */
export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** The report as a text table: one row per figure, with its target and mark. */
export function formatTable(report: BenchReport): string {
  const rows: string[][] = [["scenario", "store", "figure", "value", "unit", "target", "mark"]];
  const inputs: string[] = [];
  for (const s of report.scenarios) {
    inputs.push(
      `${s.name} (${s.store}): ${Object.entries(s.inputs).map(([k, v]) => `${k}=${v}`).join(", ")}`,
    );
    for (const f of s.figures) {
      const targets = s.targets.filter((x) => x.figure === f.name);
      (targets.length === 0 ? [undefined] : targets).forEach((t, i) => {
        rows.push([
          i === 0 ? s.name : "",
          i === 0 ? s.store : "",
          i === 0 ? f.name : "",
          i === 0 ? formatValue(f.value) : "",
          i === 0 ? f.unit : "",
          t === undefined ? "" : `${t.comparison} ${formatValue(t.limit)} (${t.rule})`,
          t === undefined ? "" : t.pass ? "pass" : "SHORT",
        ]);
      });
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) =>
    r.map((cell, i) => i === 3 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)).join("  ")
      .trimEnd()
  );
  const notes = report.scenarios.flatMap((s) => s.notes.map((n) => `${s.name} (${s.store}): ${n}`));
  return [
    `airunner bench ${
      report.quick ? "(quick) " : ""
    }on ${report.machine.cores} cores, Deno ${report.machine.deno}, ${report.startedAt}`,
    "",
    ...table,
    "",
    "inputs:",
    ...inputs.map((line) => `  ${line}`),
    "notes:",
    ...notes.map((line) => `  ${line}`),
    ...skippedLines(report.skipped),
  ].join("\n");
}

/** The skipped scenarios, grouped by store and reason (none: no lines). */
function skippedLines(skipped: readonly SkippedScenario[] = []): string[] {
  const groups = new Map<string, string[]>();
  for (const s of skipped) {
    const key = `${s.store}\n${s.reason}`;
    groups.set(key, [...(groups.get(key) ?? []), s.name]);
  }
  if (groups.size === 0) return [];
  return [
    "skipped:",
    ...[...groups].map(([key, names]) => {
      const [store, reason] = key.split("\n");
      return `  ${names.join(", ")} (${store}): ${reason}`;
    }),
  ];
}
