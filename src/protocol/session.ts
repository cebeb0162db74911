/**
 * What both ends of a WorkerSession stream agree on: how many jobs a worker
 * may hold and operations a message may carry, how often each side speaks
 * when it has nothing to say, and when silence means the connection is dead.
 *
 * Both ends watch the other with a {@link SessionWatchdog}: each side sends
 * an empty message when a whole heartbeat interval passed without it sending
 * anything, and takes the connection for dead when the other side was silent
 * for {@link SESSION_SILENT_HEARTBEATS} of the interval the other announced
 * (the worker in its open message, the server in its first response).
 *
 * @module
 */

/** Most jobs a worker session may hold at once (its credits). */
export const MAX_SESSION_CREDITS = 1000;
/**
 * Most queues one worker session serves (SessionOpen.queues): enough for a
 * worker that takes several kinds of work, few enough that a push looks at
 * each of them in turn without cost.
 */
export const MAX_SESSION_QUEUES = 16;
/** Most operations (lease updates, event batches, completions) in one session message. */
export const MAX_SESSION_OPERATIONS = 1000;
/**
 * Each side of a worker session that has sent nothing for this long sends
 * an empty message, so the other can tell an idle session from a connection
 * that died without a word (a crashed host, a middlebox that dropped it).
 */
export const SESSION_HEARTBEAT_MS = 10_000;
/**
 * Heartbeat intervals a side may stay silent before the other takes the
 * connection for dead: the worker opens a new session, the server ends the
 * old one and hands back the jobs it had not sent.
 */
export const SESSION_SILENT_HEARTBEATS = 3;
/** Longest heartbeat interval a worker may announce (one hour). */
export const MAX_SESSION_HEARTBEAT_MS = 3_600_000;

/**
 * How long a side may hear nothing from one that announced heartbeats every
 * `announcedHeartbeatMs` (0: it sends none, so silence never ends the session).
 */
export function sessionSilenceLimitMs(announcedHeartbeatMs: number): number {
  return SESSION_SILENT_HEARTBEATS * announcedHeartbeatMs;
}

/** What a heartbeat tick calls for. */
export type HeartbeatVerdict =
  /** The other side was silent past the limit: take the connection for dead. */
  | "silent"
  /** Nothing was sent for a whole interval: send an empty message. */
  | "heartbeat"
  /** Nothing to do. */
  | "none";

/**
 * The heartbeat bookkeeping of one side of one session, without timers: the
 * side calls {@link tick} from a timer of its heartbeat interval, with the
 * time, and acts on the verdict. Time is an argument (milliseconds of any
 * monotonic clock, e.g. `performance.now()`).
 *
 * @example
 * ```ts
 * const watchdog = new SessionWatchdog(performance.now());
 * watchdog.expectHeartbeatsEvery(10_000); // announced by the other side
 * setInterval(() => {
 *   const verdict = watchdog.tick(performance.now());
 *   if (verdict === "silent") abort();
 *   else if (verdict === "heartbeat") sendEmptyMessage();
 * }, 10_000);
 * ```
 */
export class SessionWatchdog {
  #heardAtMs: number;
  #sentSinceTick = false;
  #silenceLimitMs = 0;

  constructor(nowMs: number) {
    this.#heardAtMs = nowMs;
  }

  /** The other side's announced heartbeat interval (0: it sends none; never silent). */
  expectHeartbeatsEvery(announcedHeartbeatMs: number): void {
    this.#silenceLimitMs = sessionSilenceLimitMs(announcedHeartbeatMs);
  }

  /** How long the other side may be silent (0: without limit). */
  get silenceLimitMs(): number {
    return this.#silenceLimitMs;
  }

  /** Something arrived from the other side. */
  heard(nowMs: number): void {
    this.#heardAtMs = nowMs;
  }

  /** This side sent a message that says something (heartbeats do not count). */
  sent(): void {
    this.#sentSinceTick = true;
  }

  /**
   * The verdict of one heartbeat interval's end. `listening` is false while
   * this side is not reading (the other side's silence is then its own).
   */
  tick(nowMs: number, listening = true): HeartbeatVerdict {
    if (
      listening && this.#silenceLimitMs > 0 && nowMs - this.#heardAtMs > this.#silenceLimitMs
    ) {
      return "silent";
    }
    const quiet = !this.#sentSinceTick;
    this.#sentSinceTick = false;
    return quiet ? "heartbeat" : "none";
  }
}
