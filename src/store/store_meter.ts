/**
 * The measurements a store takes of itself (replay lengths, DynamoDB calls,
 * throttles, retries), reported to whatever recorder telemetry installs. The
 * store names what it measured; it never reaches up into telemetry, which
 * installs its recorder from outside (see telemetry/metrics.ts). Until then
 * each measurement costs one call to a no-op.
 *
 * @module
 */

/** The metrics a store reports; each is declared in telemetry/metrics.ts's table. */
export type StoreMetricName =
  | "airunner.streams.historical_replay.duration"
  | "airunner.streams.historical_replay.events.total"
  | "airunner.dynamodb.operations.total"
  | "airunner.dynamodb.batch_retries.total"
  | "airunner.dynamodb.throttles.total"
  | "airunner.jobs.attempts.total"
  | "airunner.jobs.retries.scheduled.total"
  | "airunner.jobs.exhausted.total";

/** Bounded labels of one measurement (operation names, never job ids). */
export type StoreMetricAttributes = Readonly<Record<string, string>>;

/** Where a store's measurements go. */
export interface StoreMeter {
  count(name: StoreMetricName, value: number, attributes?: StoreMetricAttributes): void;
  record(name: StoreMetricName, value: number, attributes?: StoreMetricAttributes): void;
}

const NO_METER: StoreMeter = { count() {}, record() {} };
let installed: StoreMeter = NO_METER;

/** Sends every store's measurements to `meter` from now on. */
export function installStoreMeter(meter: StoreMeter): void {
  installed = meter;
}

/** Adds `value` to a store counter. */
export function countStoreMetric(
  name: StoreMetricName,
  value = 1,
  attributes?: StoreMetricAttributes,
): void {
  installed.count(name, value, attributes);
}

/** Records one value of a store histogram. */
export function recordStoreMetric(
  name: StoreMetricName,
  value: number,
  attributes?: StoreMetricAttributes,
): void {
  installed.record(name, value, attributes);
}
