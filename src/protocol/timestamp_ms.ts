/**
 * Timestamps as Unix milliseconds, without the protobuf runtime (the CLI's
 * start loads none; see tests/cli/startup_graph_test.ts).
 *
 * @module
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** Unix ms of a timestamp, or undefined when it is unset. */
export function millis(ts: Timestamp | undefined): number | undefined {
  return ts === undefined ? undefined : Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6);
}

/** The Timestamp of Unix ms `ms`, as a plain message. */
export function timestampOfMillis(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return {
    $typeName: "google.protobuf.Timestamp",
    seconds: BigInt(seconds),
    nanos: (ms - seconds * 1000) * 1e6,
  };
}
