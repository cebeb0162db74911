/**
 * Following a job: replay its events, tail them live, and return the
 * finished job. A stream that ends early (server restart, dropped
 * connection) is resumed after the last event seen, so nothing is missed and
 * nothing is shown twice.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { EventType, Job, JobEvent } from "../../gen/job/v1/job_pb.ts";
import { type Clock, systemClock } from "../clock.ts";
import { lastSequenceOf } from "../store/event_sequencing.ts";
import { isFinished } from "../store/job_state.ts";
import { backoffDelayMs } from "../worker/backoff.ts";
import type { AirunnerClients } from "./transport.ts";

/** Options of {@link followJob}. */
export interface FollowOptions {
  /** Start at this sequence (default: the beginning). */
  readonly fromSequence?: bigint;
  /** Only these event types (default: all). */
  readonly eventTypes?: readonly EventType[];
  /** Called for each event, in order; awaited before the next. */
  readonly onEvent: (event: JobEvent) => void | Promise<void>;
  readonly signal?: AbortSignal;
  readonly clock?: Clock;
  /** Give up after failing to reach the server for this long (default 60 s). */
  readonly maxOutageMs?: number;
}

/** Follows `jobId` until it finishes; returns the finished job. */
export async function followJob(
  clients: AirunnerClients,
  jobId: string,
  options: FollowOptions,
): Promise<Job> {
  const clock = options.clock ?? systemClock;
  const maxOutageMs = options.maxOutageMs ?? 60_000;
  let from = options.fromSequence ?? 0n;
  let failures = 0;
  let outageStarted: number | undefined;
  for (;;) {
    try {
      const stream = clients.events.streamJobEvents(
        { jobId, fromSequence: from, eventFilter: [...(options.eventTypes ?? [])] },
        options.signal === undefined ? {} : { signal: options.signal },
      );
      for await (const { event } of stream) {
        if (event === undefined) continue;
        await options.onEvent(event);
        from = lastSequenceOf(event) + 1n;
        failures = 0;
        outageStarted = undefined;
      }
      const job = await clients.jobs.getJob(
        { jobId },
        options.signal === undefined ? {} : { signal: options.signal },
      );
      if (job.job !== undefined && isFinished(job.job.state)) return job.job;
      // The stream ended before the job did: resume where it stopped.
    } catch (error) {
      if (options.signal?.aborted || !isTransient(error)) throw error;
      outageStarted ??= clock.now();
      if (clock.now() - outageStarted > maxOutageMs) throw error;
      await clock.sleep(backoffDelayMs(failures++), options.signal);
    }
  }
}

function isTransient(error: unknown): boolean {
  const code = ConnectError.from(error).code;
  return code === Code.Unavailable || code === Code.Unknown || code === Code.Aborted ||
    code === Code.Internal;
}
