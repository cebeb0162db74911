/**
 * The layers of airunner's source, lowest first, and which layer may import
 * which (see specs/architecture.md). A module may import its own layer and any
 * layer below it, never one to its right; layers of the same rank are
 * siblings and never import each other (worker, client and server share only
 * through protocol/).
 *
 * @module
 */

/** One layer: the paths it covers and its rank (lower ranks are imported by higher ones). */
export interface Layer {
  readonly name: string;
  readonly rank: number;
  /** Does this repository-relative path belong to the layer? */
  readonly holds: (path: string) => boolean;
}

const under = (dir: string) => (path: string) => path.startsWith(`${dir}/`);

/** Every layer; a file under src/ that none holds fails the layering test. */
export const LAYERS: readonly Layer[] = [
  { name: "gen", rank: 0, holds: under("gen") },
  // src/*.ts: clock, bytes, logger, retry...: small utilities every layer uses.
  { name: "foundation", rank: 0, holds: (p) => /^src\/[^/]+\.ts$/.test(p) },
  { name: "protocol", rank: 1, holds: under("src/protocol") },
  { name: "store", rank: 2, holds: under("src/store") },
  { name: "auth", rank: 2, holds: under("src/auth") },
  { name: "telemetry", rank: 3, holds: under("src/telemetry") },
  { name: "server", rank: 4, holds: under("src/server") },
  { name: "worker", rank: 4, holds: under("src/worker") },
  { name: "client", rank: 4, holds: under("src/client") },
  { name: "cli", rank: 5, holds: under("src/cli") },
  { name: "main", rank: 6, holds: (p) => p === "main.ts" },
];

/** The layer a path belongs to, if any. */
export function layerOf(path: string): Layer | undefined {
  return LAYERS.find((layer) => layer.holds(path));
}

/** Why `from` may not import `to`, or undefined when it may. */
export function forbiddenImport(from: Layer, to: Layer): string | undefined {
  if (from.name === to.name || to.rank < from.rank) return undefined;
  if (to.rank > from.rank) return `${from.name} may not import ${to.name}, a layer above it`;
  // Of the rank-0 pair, the foundation utilities may use generated code.
  if (from.name === "foundation" && to.name === "gen") return undefined;
  return `${from.name} and ${to.name} are siblings and may not import each other`;
}
