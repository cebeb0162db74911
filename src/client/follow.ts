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

/** How far a job's event log reached when GetJob answered. */
export interface StoredExtent {
  /** The highest sequence the job's attempts account for (0: none). */
  readonly lastSequence: bigint;
  /**
   * Whether nothing is stored past lastSequence. It may not be when the
   * last attempt has ended, or runs without events yet after others: the
   * notice the server writes between two attempts (ATTEMPT_END) takes the
   * next number and lies in no attempt's range.
   */
  readonly exact: boolean;
}

/**
 * What `job` (as GetJob returns it) says is stored of its log. A running
 * attempt's last sequence is the job's highest stored one on every backend.
 */
export function storedExtent(job: Job): StoredExtent {
  const lastSequence = job.attempts.reduce(
    (max, a) => a.lastSequence > max ? a.lastSequence : max,
    0n,
  );
  const last = job.attempts.at(-1);
  if (last === undefined) return { lastSequence, exact: job.attempt === 0 };
  const running = last.outcome === "" && last.endedAt === undefined;
  const first = job.attempts.length === 1 && last.number === 1 && job.attempt === 1;
  return { lastSequence, exact: running && (last.firstSequence > 0n || first) };
}

/** Options of {@link replayStored}. */
export interface ReplayStoredOptions {
  /** Start at this sequence (default: the beginning). */
  readonly fromSequence?: bigint;
  /** Each stored event in order, of every type (the caller filters); "stop" ends the replay. */
  readonly onEvent: (event: JobEvent) => void | "stop" | Promise<void | "stop">;
  /** The job as the caller just read it (saves a GetJob). */
  readonly job?: Job;
  /**
   * When the extent is not exact: how long to wait, once it is reached, for
   * a notice stored after it (default 200 ms).
   */
  readonly noticeWaitMs?: number;
}

/**
 * Replays what is stored of a job's log now, and stops: a finished job's
 * stream ends by itself; a running job's replay stops at the extent GetJob
 * gave ({@link storedExtent}), however fast the job keeps printing. Events
 * stored after that call are not delivered (but for the notices the extent
 * cannot count). Returns the job as GetJob gave it.
 */
export async function replayStored(
  clients: CliJobClients,
  jobId: string,
  options: ReplayStoredOptions,
): Promise<Job> {
  const job = options.job ?? (await clients.jobs.getJob({ jobId })).job;
  if (job === undefined) throw new RpcError("the server returned no job", RpcCode.Internal);
  const finished = isFinished(job.state);
  const { lastSequence, exact } = storedExtent(job);
  const from = options.fromSequence !== undefined && options.fromSequence > 1n
    ? options.fromSequence
    : 1n;
  if (!finished && exact && from > lastSequence) return job;
  const stop = new AbortController();
  let quiet: ReturnType<typeof setTimeout> | undefined;
  const waitForNotice = () => {
    clearTimeout(quiet);
    quiet = setTimeout(() => stop.abort(), options.noticeWaitMs ?? 200);
  };
  if (!finished && from > lastSequence) waitForNotice();
  try {
    const stream = clients.events.streamJobEvents(
      { jobId, fromSequence: from, fromTimestamp: 0n, eventFilter: [] },
      { signal: stop.signal },
    );
    for await (const { event } of stream) {
      if (event === undefined) continue;
      // Past the extent, only a notice it could not count was stored before the call.
      const past = !finished && event.sequence > lastSequence;
      if (past && (exact || event.eventData.case !== "attemptEnd")) break;
      if (await options.onEvent(event) === "stop") break;
      if (!finished && lastSequenceOf(event) >= lastSequence) {
        if (exact) break;
        waitForNotice();
      }
    }
  } catch (error) {
    if (!(stop.signal.aborted && rpcErrorOf(error) !== undefined)) throw error;
  } finally {
    clearTimeout(quiet);
    stop.abort();
  }
  return job;
}
