/**
 * Every metric airunner records: name, unit, kind and meaning, in one table
 * that specs/observability.md mirrors and a test checks end to end. Names
 * starting with airunner.events/streams/jobs/dynamodb/channels are the wire
 * contract's; attributes are bounded (queue names, outcomes, operations),
 * never job ids.
 *
 * Instruments come from the global OpenTelemetry meter: with OTEL_DENO
 * unset they are no-ops and cost a function call.
 *
 * @module
 */
import {
  type Attributes,
  type Counter,
  type Histogram,
  metrics,
  type ObservableGauge,
  type ObservableResult,
  type UpDownCounter,
} from "@opentelemetry/api";
import { VERSION } from "../version.ts";
import { installStoreMeter, type StoreMetricName } from "../store/store_meter.ts";

/** How a metric is recorded. */
type Kind = "counter" | "updown" | "histogram" | "gauge";

interface MetricSpec {
  readonly kind: Kind;
  readonly unit: string;
  readonly description: string;
}

/** The metrics, by name. */
export const METRICS = {
  "airunner.events.publish.total": {
    kind: "counter",
    unit: "{call}",
    description: "PublishJobEvents calls handled by the server",
  },
  "airunner.events.publish.errors.total": {
    kind: "counter",
    unit: "{call}",
    description: "PublishJobEvents calls the store refused or failed",
  },
  "airunner.events.publish.duration": {
    kind: "histogram",
    unit: "ms",
    description: "time the store took to store one PublishJobEvents call's events",
  },
  "airunner.events.persisted.total": {
    kind: "counter",
    unit: "{event}",
    description: "events stored (resends that were already stored are not counted)",
  },
  "airunner.events.dropped.total": {
    kind: "counter",
    unit: "{event}",
    description: "events a worker discarded because their delivery failed for good",
  },
  "airunner.streams.active": {
    kind: "updown",
    unit: "{stream}",
    description: "StreamJobEvents calls in progress",
  },
  "airunner.streams.historical_replay.duration": {
    kind: "histogram",
    unit: "ms",
    description: "time a stream took to replay stored events before it started tailing",
  },
  "airunner.streams.historical_replay.events.total": {
    kind: "counter",
    unit: "{event}",
    description: "events streams delivered while replaying",
  },
  "airunner.jobs.enqueued.total": {
    kind: "counter",
    unit: "{job}",
    description: "jobs created (idempotent repeats are not counted); attribute queue",
  },
  "airunner.jobs.dequeued.total": {
    kind: "counter",
    unit: "{job}",
    description: "leases handed out (each attempt counts); attribute queue",
  },
  "airunner.jobs.completed.total": {
    kind: "counter",
    unit: "{job}",
    description:
      "jobs completed by their worker; attribute outcome (succeeded, failed: a cancelled job's result is a failure)",
  },
  "airunner.jobs.attempts.total": {
    kind: "counter",
    unit: "{attempt}",
    description:
      "attempts that ended; attribute outcome (completed, failed, timed_out, lost, handed_back, cancelled)",
  },
  "airunner.jobs.retries.scheduled.total": {
    kind: "counter",
    unit: "{attempt}",
    description: "failed attempts the retry policy scheduled again, after a backoff",
  },
  "airunner.jobs.exhausted.total": {
    kind: "counter",
    unit: "{job}",
    description:
      "jobs that failed for good after using every attempt (dead letters); attribute reason (exhausted, worker_lost)",
  },
  "airunner.schedules.firings.total": {
    kind: "counter",
    unit: "{firing}",
    description:
      "schedule firings a scheduler handled; attribute outcome (enqueued, skipped: the previous job still ran, missed: no server ran at the time, failed)",
  },
  "airunner.jobs.visibility_updates.total": {
    kind: "counter",
    unit: "{call}",
    description: "lease extensions and hand-backs; attribute kind (extend, hand_back)",
  },
  "airunner.dynamodb.operations.total": {
    kind: "counter",
    unit: "{call}",
    description: "DynamoDB calls of the AWS store; attribute operation",
  },
  "airunner.dynamodb.throttles.total": {
    kind: "counter",
    unit: "{call}",
    description: "DynamoDB calls still throttled after the SDK's retries",
  },
  "airunner.dynamodb.batch_retries.total": {
    kind: "counter",
    unit: "{retry}",
    description:
      "DynamoDB calls retried: by the SDK (throttling, transient faults) and BatchWriteItem rounds resending UnprocessedItems",
  },
  "airunner.channels.overflow.total": {
    kind: "counter",
    unit: "{event}",
    description: "events a worker moved from memory to its spill file (server slow or away)",
  },
  "airunner.queue.depth": {
    kind: "gauge",
    unit: "{job}",
    description:
      "SCHEDULED jobs per queue, read from the store at each export; attribute queue (the queues this server has seen, at most 64)",
  },
  "airunner.dequeue.wait.duration": {
    kind: "histogram",
    unit: "ms",
    description: "time a DequeueJob waited; attribute result (job, empty)",
  },
  "airunner.jobs.time_to_start": {
    kind: "histogram",
    unit: "ms",
    description:
      "job created to its process started, by the worker's clock against the server's created_at (clock skew counts; later attempts include earlier ones)",
  },
  "airunner.jobs.duration": {
    kind: "histogram",
    unit: "ms",
    description:
      "process start to end, by outcome (succeeded, failed, timed_out, cancelled, lost, handed_back)",
  },
  "airunner.jobs.output.bytes": {
    kind: "counter",
    unit: "By",
    description:
      "bytes of job output the worker read; attribute stream (stdout, stderr; pty output counts as stdout)",
  },
} as const satisfies Record<string, MetricSpec>;

/** One of the metric names. */
export type MetricName = keyof typeof METRICS;

// Every metric a store reports is declared in the table above.
const _storeMetricsAreDeclared: StoreMetricName extends MetricName ? true : never = true;

type Instrument = Counter | UpDownCounter | Histogram | ObservableGauge;
const instruments = new Map<MetricName, Instrument>();

function instrument(name: MetricName): Instrument {
  let made = instruments.get(name);
  if (made === undefined) {
    const meter = metrics.getMeter("airunner", VERSION);
    const { kind, unit, description } = METRICS[name];
    const options = { unit, description };
    made = kind === "counter"
      ? meter.createCounter(name, options)
      : kind === "updown"
      ? meter.createUpDownCounter(name, options)
      : kind === "gauge"
      ? meter.createObservableGauge(name, options)
      : meter.createHistogram(name, options);
    instruments.set(name, made);
  }
  return made;
}

/** Adds `value` to a counter or up-down counter. */
export function count(name: MetricName, value = 1, attributes?: Attributes): void {
  (instrument(name) as Counter).add(value, attributes);
}

/** Records one value of a histogram. */
export function record(name: MetricName, value: number, attributes?: Attributes): void {
  (instrument(name) as Histogram).record(value, attributes);
}

/** Reports a gauge's values at each export through `callback`; returns a function that stops it. */
export function observe(
  name: MetricName,
  callback: (result: ObservableResult) => void | Promise<void>,
): () => void {
  const gauge = instrument(name) as ObservableGauge;
  gauge.addCallback(callback);
  return () => gauge.removeCallback(callback);
}

/**
 * Creates every instrument and adds 0 to each counter, so a collector sees
 * every series from the start (a counter that never moved is still there).
 */
export function registerAllMetrics(): void {
  installStoreMeter({ count, record });
  for (const [name, spec] of Object.entries(METRICS) as [MetricName, MetricSpec][]) {
    const made = instrument(name);
    if (spec.kind === "counter" || spec.kind === "updown") (made as Counter).add(0);
  }
}
