/**
 * Moves a running process's output into batches and on to the publisher:
 * both pipes are read at once, each chunk is batched with its stream type,
 * full batches go out at once, and a timer sends a batch when its flush time
 * comes (interval after its first item, or a pause in the output). Reading
 * waits while the publisher is full, so a fast writer is slowed rather than
 * buffered without bound.
 *
 * @module
 */
import { StreamType } from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import type { EventBatcher, OutputBatch } from "./event_batcher.ts";

/** Options of {@link pumpOutput}. */
export interface OutputPumpOptions {
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly batcher: EventBatcher;
  /** Sends one batch (in order; may wait for room). */
  readonly send: (batch: OutputBatch) => Promise<void>;
  readonly clock: Clock;
  /**
   * Resolves when the process has exited; the pipes get `drainAfterExitMs`
   * more to reach their end (a background child may hold them open).
   */
  readonly exited: Promise<unknown>;
  readonly drainAfterExitMs: number;
}

/** Pumps until both pipes end (or are given up on after exit), then sends what is left. */
export async function pumpOutput(options: OutputPumpOptions): Promise<void> {
  const { batcher, clock, send } = options;
  // Batches leave in order: every send goes through this chain.
  let chain: Promise<void> = Promise.resolve();
  const enqueue = (batch: OutputBatch) => chain = chain.then(() => send(batch));

  const readersDone = new AbortController();
  let dataArrived: (() => void) | undefined;
  const timer = (async () => {
    while (!readersDone.signal.aborted) {
      const at = batcher.nextFlushAt();
      if (at === undefined) {
        await new Promise<void>((resolve) => {
          dataArrived = resolve;
          readersDone.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        dataArrived = undefined;
      } else {
        await clock.sleep(at - clock.now(), readersDone.signal);
      }
      const due = batcher.takeDue(clock.now());
      if (due !== undefined) await enqueue(due);
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
  readersDone.abort();
  await timer;
  const rest = batcher.takeAll();
  if (rest !== undefined) enqueue(rest);
  await chain;

  function readInto(stream: ReadableStream<Uint8Array>, type: StreamType) {
    const reader = stream.getReader();
    const done = (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          for (const full of batcher.add(type, value, clock.now())) await enqueue(full);
          dataArrived?.();
        }
      } catch {
        // The pipe was cancelled after exit: what was read has been batched.
      }
    })();
    return { done, cancel: () => reader.cancel().catch(() => {}) };
  }
}
