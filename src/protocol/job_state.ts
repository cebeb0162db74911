/**
 * The job state machine, shared by every backend.
 *
 * ```
 *              enqueue
 *                 │
 *                 ▼
 *   ┌──────── SCHEDULED ◀──────────────┐
 *   │             │ dequeue            │ lease expired, or handed back
 *   │             ▼ (attempt + 1)      │ (UpdateJob with visibility 0)
 *   │          RUNNING ────────────────┘
 *   │             │ complete
 *   │             ├── success ──▶ COMPLETED
 *   │             └── failure ──▶ FAILED
 *   └── cancel ──▶ CANCELLED
 * ```
 *
 * COMPLETED, FAILED and CANCELLED are final: nothing moves a job out of them,
 * no token can touch the job again, and event streams end once they reach one.
 *
 * Which transition a request makes, and when a lease holder may act, is
 * decided in one place: src/store/lifecycle.ts.
 *
 * @module
 */
import { JobState } from "../../gen/job/v1/job_lite.ts";

/** True for the final states: COMPLETED, FAILED, CANCELLED. */
export function isFinished(state: JobState): boolean {
  return state === JobState.COMPLETED || state === JobState.FAILED ||
    state === JobState.CANCELLED;
}

/** The state a completed job ends in, given whether it succeeded. */
export function finishedStateFor(success: boolean): JobState {
  return success ? JobState.COMPLETED : JobState.FAILED;
}
