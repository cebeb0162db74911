/**
 * Moves a running process's output into the attempt's event log: both pipes
 * are read at once, each chunk is batched with its stream type, and a timer
 * queues a batch when its flush time comes (an interval after its first
 * item, or a pause in the output). Reading waits while the publisher is
 * full, so a fast writer is slowed rather than buffered without bound.
 * Each stream's bytes pass through its own secret masker on the way in
 * (none when the job has no secrets).
 *
 * @module
 */
import { count } from "../telemetry/metrics.ts";
import { StreamType } from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import type { AttemptEvents } from "./attempt_events.ts";
import { StreamMasker } from "./secret_masker.ts";

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
  /** The job's secrets as masker patterns (secret_masker.ts); empty: output passes as read. */
  readonly secretPatterns: readonly Uint8Array[];
  /**
   * Longest a masker may hold back the end of a stream's output (bytes that
   * may start a secret) while nothing more arrives on it; the end of the
   * stream releases them too.
   */
  readonly maxHoldMs: number;
}

/**
 * Pumps until both pipes end (or are given up on after exit). Output still
 * waiting in the batcher is left for the next lifecycle event to flush.
 */
export async function pumpOutput(options: OutputPumpOptions): Promise<void> {
  const { events, clock } = options;
  const readersDone = new AbortController();
  let dataArrived: (() => void) | undefined;
  const readers = [
    readInto(options.stdout, StreamType.STDOUT),
    readInto(options.stderr, StreamType.STDERR),
  ];
  const timer = (async () => {
    while (!readersDone.signal.aborted) {
      const at = earliest(events.nextFlushAt(), heldUntil());
      if (at === undefined) {
        await new Promise<void>((resolve) => {
          dataArrived = resolve;
          readersDone.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        dataArrived = undefined;
      } else {
        await clock.sleep(at - clock.now(), readersDone.signal);
      }
      if (readersDone.signal.aborted) break;
      const now = clock.now();
      // Held bytes go once their stream has been quiet for maxHoldMs, not
      // with any batch: a batch can fall due between two reads of one
      // write, whose second read would complete the secret.
      for (const reader of readers) {
        if (reader.heldSinceMs !== undefined && reader.heldSinceMs + options.maxHoldMs <= now) {
          await reader.releaseHeld();
        }
      }
      await events.flushDue(now);
    }
  })();

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
    const masker = options.secretPatterns.length === 0
      ? undefined
      : new StreamMasker(options.secretPatterns);
    const state = {
      /** When the bytes the masker holds back were read, if it holds any. */
      heldSinceMs: undefined as number | undefined,
      releaseHeld: async () => {
        state.heldSinceMs = undefined;
        const rest = masker?.flush();
        if (rest !== undefined && rest.byteLength > 0) {
          await events.addOutput(type, rest, clock.now());
        }
      },
    };
    const done = (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          count("airunner.jobs.output.bytes", value.byteLength, { stream: streamName });
          const output = masker === undefined ? value : masker.push(value);
          // Held bytes wait for the next read, so their time counts only
          // from when this reader is free to read again (not while the
          // publisher's backpressure holds it).
          state.heldSinceMs = undefined;
          if (output.byteLength > 0) await events.addOutput(type, output, clock.now());
          if (masker?.holding) state.heldSinceMs = clock.now();
          dataArrived?.();
        }
      } catch {
        // The pipe was cancelled after exit: what was read has been batched.
      } finally {
        reader.releaseLock();
      }
      await state.releaseHeld();
    })();
    return Object.assign(state, { done, cancel: () => reader.cancel().catch(() => {}) });
  }

  function heldUntil(): number | undefined {
    let at: number | undefined;
    for (const { heldSinceMs } of readers) {
      if (heldSinceMs !== undefined) at = earliest(at, heldSinceMs + options.maxHoldMs);
    }
    return at;
  }
}

function earliest(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}
