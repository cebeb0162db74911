/**
 * The worker's side of session credits: the server pushes a job only against
 * a credit the worker granted, so the worker counts what it granted that no
 * job used yet, the jobs pushed and not yet claimed, and what the waiting
 * claim asked for. Pure bookkeeping; the session sends what it decides.
 *
 * @module
 */
import type { LeasedJob } from "../../protocol/job_requests.ts";

/** Credits and pushed jobs of one worker session (across its streams). */
export class SessionCredits {
  /** Jobs pushed by the server and not claimed yet. */
  readonly #received: LeasedJob[] = [];
  /** Credits granted on the current stream that no job has used yet. */
  #outstanding = 0;
  /** What the waiting claim asked for (0 when no claim waits). */
  wanted = 0;

  /** How many pushed jobs wait to be claimed. */
  get received(): number {
    return this.#received.length;
  }

  /** Credits to grant so the server may push `wanted` more jobs than are on their way (<= 0: none). */
  missing(wanted: number): number {
    return wanted - this.#outstanding - this.#received.length;
  }

  /** `credits` more were granted on the current stream. */
  granted(credits: number): void {
    this.#outstanding += credits;
  }

  /**
   * A new stream starts with no credits on the server: the credits its first
   * message grants (what the waiting claim wants beyond the jobs in hand).
   */
  startStream(): number {
    const credits = Math.max(0, this.wanted - this.#received.length);
    this.#outstanding = credits;
    return credits;
  }

  /** The server pushed `jobs` (`count` of them used a credit each). */
  pushed(jobs: readonly LeasedJob[], count: number): void {
    this.#received.push(...jobs);
    this.#outstanding = Math.max(0, this.#outstanding - count);
  }

  /** Takes up to `maxJobs` of the pushed jobs, oldest first. */
  take(maxJobs: number): LeasedJob[] {
    return this.#received.splice(0, maxJobs);
  }

  /** Takes every pushed job. */
  takeAll(): LeasedJob[] {
    return this.#received.splice(0);
  }
}
