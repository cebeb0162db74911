/**
 * Moves a running process's output into the attempt's event log: both pipes
 * are read at once, each chunk is batched with its stream type, and a timer
 * queues a batch when its flush time comes (an interval after its first
 * item, or a pause in the output). Reading waits while the publisher is
 * full, so a fast writer is slowed rather than buffered without bound.
 *
 * @module
 */
import { count } from "../telemetry/metrics.ts";
import { StreamType } from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import type { AttemptEvents } from "./attempt_events.ts";

/** Options of {@link pumpOutput}. */
export interface OutputPumpOptions {
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly events: AttemptEvents;
  readonly clock: Clock;
  /**
   * Resolves when the process has exited; the pipes then get
   * `drainAfterExitMs` more to reach their end (a child that escaped the
   * process group may hold them open).
   */
  readonly exited: Promise<unknown>;
  readonly drainAfterExitMs: number;
}

/**
 * Pumps until both pipes end (or are given up on after exit). Output still
 * waiting in the batcher is left for the next lifecycle event to flush.
 */
export async function pumpOutput(options: OutputPumpOptions): Promise<void> {
  const { events, clock } = options;
  const readersDone = new AbortController();
  let dataArrived: (() => void) | undefined;
  const timer = (async () => {
    while (!readersDone.signal.aborted) {
      const at = events.nextFlushAt();
      if (at === undefined) {
        await new Promise<void>((resolve) => {
          dataArrived = resolve;
          readersDone.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        dataArrived = undefined;
      } else {
        await clock.sleep(at - clock.now(), readersDone.signal);
      }
      if (!readersDone.signal.aborted) await events.flushDue(clock.now());
    }
  })();

  const readers = [
    readInto(options.stdout, StreamType.STDOUT),
    readInto(options.stderr, StreamType.STDERR),
  ];
  const drained = new AbortController();
  let abandoned = false;
  const giveUp = options.exited
    .then(() => clock.sleep(options.drainAfterExitMs, drained.signal))
    .then(() => abandoned = !drained.signal.aborted);
  await Promise.race([Promise.all(readers.map((r) => r.done)), giveUp]);
  drained.abort();
  if (abandoned) await Promise.all(readers.map((r) => r.cancel()));
  await Promise.all(readers.map((r) => r.done));
  readersDone.abort();
  await timer;

  function readInto(stream: ReadableStream<Uint8Array>, type: StreamType) {
    const reader = stream.getReader();
    const streamName = type === StreamType.STDERR ? "stderr" : "stdout";
    const done = (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          count("airunner.jobs.output.bytes", value.byteLength, { stream: streamName });
          await events.addOutput(type, value, clock.now());
          dataArrived?.();
        }
      } catch {
        // The pipe was cancelled after exit: what was read has been batched.
      } finally {
        reader.releaseLock();
      }
    })();
    return { done, cancel: () => reader.cancel().catch(() => {}) };
  }
}
