/**
 * Following a job: replay its events, tail them live, and return the
 * finished job. A stream cut short (server restart, dropped connection) is
 * resumed after the last event seen, so nothing is missed and nothing is
 * shown twice. A server that cannot be reached at all fails at once; one
 * that goes away mid-follow is retried for `maxOutageMs`.
 *
 * @module
 */
import { RpcCode, RpcError, rpcErrorOf, type RpcFailure } from "../rpc_error.ts";
import type { EventType, Job, JobEvent } from "../../gen/job/v1/job_pb.ts";
import { type Clock, systemClock } from "../clock.ts";
import { lastSequenceOf } from "../protocol/event_position.ts";
import { isFinished } from "../protocol/job_state.ts";
import { isTransient, retry, transientCodes } from "../retry.ts";
import type { CliJobClients } from "./json_client.ts";

/** Options of {@link followJob}. */
export interface FollowOptions {
  /** Start at this sequence (default: the beginning). */
  readonly fromSequence?: bigint;
  /** Only events at or after this Unix millisecond (default: all). */
  readonly fromTimestampMs?: number;
  /** Only these event types (default: all). */
  readonly eventTypes?: readonly EventType[];
  /** Called for each event, in order; awaited before the next. Its errors end the follow. */
  readonly onEvent: (event: JobEvent) => void | Promise<void>;
  /** Called when a lost connection is being retried. */
  readonly onReconnect?: (error: RpcFailure) => void;
  readonly signal?: AbortSignal;
  readonly clock?: Clock;
  /** Give up after failing to reach the server for this long (default 60 s). */
  readonly maxOutageMs?: number;
  /**
   * The caller has just heard from the server about this job (`submit`
   * enqueued it), so the first call that checks the server and the job is
   * skipped: one round trip less, about 2 ms of `submit --follow`.
   */
  readonly jobKnownToExist?: boolean;
}

/** Follows `jobId` until it finishes; returns the finished job. */
export async function followJob(
  clients: CliJobClients,
  jobId: string,
  options: FollowOptions,
): Promise<Job> {
  const clock = options.clock ?? systemClock;
  const maxOutageMs = options.maxOutageMs ?? 60_000;
  const callOptions = options.signal === undefined ? {} : { signal: options.signal };
  let from = options.fromSequence ?? 0n;
  // Asking for the job first fails fast on a server that cannot be reached
  // (or a job that does not exist); only a server that answered once is
  // waited for when it goes away.
  let connected = options.jobKnownToExist === true ||
    (await clients.jobs.getJob({ jobId }, callOptions)).job !== undefined;
  let outageStarted: number | undefined;
  /** Replays and tails from `from` until the stream ends; the job as it is then. */
  const followOnce = async (): Promise<Job | undefined> => {
    const stream = clients.events.streamJobEvents(
      {
        jobId,
        fromSequence: from,
        fromTimestamp: BigInt(options.fromTimestampMs ?? 0),
        eventFilter: [...(options.eventTypes ?? [])],
      },
      callOptions,
    );
    for await (const { event } of stream) {
      connected = true;
      if (event === undefined) continue;
      from = lastSequenceOf(event) + 1n;
      await options.onEvent(event);
    }
    const { job } = await clients.jobs.getJob({ jobId }, callOptions);
    connected = true;
    outageStarted = undefined;
    return job;
  };
  // One count of retries for both reasons to resume, so the pauses grow
  // across the whole follow.
  const job = await retry(followOnce, {
    // The stream ended before the job did (a server that cut it short):
    // resume where it stopped, after a pause.
    retryResult: (job) => job === undefined || !isFinished(job.state),
    // Errors of `onEvent` are not failed calls, and end the follow.
    isRetryable: (error) => {
      if (rpcErrorOf(error) === undefined || !connected) return false;
      if (!isTransient(error, FOLLOW_TRANSIENT_CODES)) return false;
      outageStarted ??= clock.now();
      return clock.now() - outageStarted <= maxOutageMs;
    },
    onRetry: (error) => {
      const failure = rpcErrorOf(error);
      if (failure !== undefined) options.onReconnect?.(failure);
    },
    clock,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  if (job !== undefined && isFinished(job.state)) return job;
  // Only `signal` ends the retrying before the job finished.
  throw new RpcError("following the job was stopped", RpcCode.Canceled);
}

/**
 * The transient codes of a follow: the shared ones but deadline_exceeded.
 * A follow's calls have no deadline but the one its caller chose (the CLI's
 * `--timeout` / `--call-timeout`: give up on each call after this long);
 * resuming would override that choice, so the follow ends as it always has.
 */
const FOLLOW_TRANSIENT_CODES = transientCodes({ removing: [RpcCode.DeadlineExceeded] });
