/**
 * What a benchmark scenario reports: its inputs, its figures, and its
 * targets with a pass/short mark each.
 *
 * @module
 */

/** One measured number. */
export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
}

/** A target on one figure: `figure` must be `comparison` `limit`. */
export interface Target {
  readonly figure: string;
  readonly comparison: "<=" | ">=";
  readonly limit: number;
  /** How the limit was derived, such as "0.4 × rpc-baseline calls/s". */
  readonly rule: string;
  readonly pass: boolean;
}

/** The outcome of one scenario on one store. */
export interface ScenarioResult {
  readonly name: string;
  readonly store: string;
  readonly inputs: Readonly<Record<string, string | number>>;
  readonly figures: Figure[];
  readonly targets: Target[];
  /** What limits the figures, and anything else a reader should know. */
  readonly notes: string[];
}

/** What every scenario gets. */
export interface ScenarioContext {
  readonly store: string;
  readonly quick: boolean;
  /** Results of scenarios that ran earlier in this run, by `name@store`. */
  readonly earlier: ReadonlyMap<string, ScenarioResult>;
  /** Progress for the person watching (stderr). */
  readonly progress: (message: string) => void;
}

/** Makes a target from a figure value. */
export function target(
  figure: string,
  value: number,
  comparison: "<=" | ">=",
  limit: number,
  rule: string,
): Target {
  const pass = comparison === "<=" ? value <= limit : value >= limit;
  return { figure, comparison, limit, rule, pass: Number.isFinite(value) && pass };
}

/** The value of figure `name` of an earlier scenario (on `store`, by default this one), or NaN. */
export function figureOf(
  context: ScenarioContext,
  scenario: string,
  name: string,
  store = context.store,
): number {
  return context.earlier.get(`${scenario}@${store}`)?.figures.find((f) => f.name === name)
    ?.value ?? Number.NaN;
}
