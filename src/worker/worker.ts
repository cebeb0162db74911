/**
 * A worker: claims jobs from its queues (the first queue's before the
 * second's when both have work) and runs up to `concurrency` of them at
 * once. Shutdown is graceful: claiming stops at once, running jobs get
 * `shutdownGraceMs` to finish, then they are stopped and handed back to the
 * queue for another worker.
 *
 * Before it claims anything, a worker kills the job processes that an
 * earlier worker on the same workspace root left when it died (see
 * leftover_groups.ts); while it runs, its jobs die with it (job_groups.ts).
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { MAX_DEQUEUE_JOBS } from "../protocol/limits.ts";
import { runClaimLoop } from "./claim_loop.ts";
import { join } from "node:path";
import { executeJob } from "./job_execution.ts";
import { RUNNING_DIR } from "./group_ledger.ts";
import { type JobGroups, openJobGroups, type WorkerJobGroups } from "./job_groups.ts";
import { killLeftoverGroups } from "./leftover_groups.ts";
import { secureWorkspaceRoot } from "./root_ownership.ts";
import { effectiveUid, type RunAsUser } from "./run_as.ts";
import type { WorkerApi } from "./worker_api.ts";
import { claimWorkspaceArea } from "./workspace_root.ts";

/** Options of {@link startWorker}. */
export interface WorkerOptions {
  readonly api: WorkerApi;
  /** The queues to take jobs from, in order of preference (at least one). */
  readonly queues: readonly string[];
  readonly concurrency: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Environment the jobs inherit (the job's own entries override it). */
  readonly baseEnv: Readonly<Record<string, string>>;
  /** Lease length the worker asks for; it extends at a third of it. */
  readonly visibilityTimeoutSeconds: number;
  /** Between SIGTERM and SIGKILL when a job must stop. */
  readonly killGraceMs: number;
  /** How long running jobs may finish after shutdown begins. */
  readonly shutdownGraceMs: number;
  /**
   * Where jobs' repositories are checked out: an absolute path, under which
   * the worker takes an area of its own and, first, removes the areas of
   * workers that died (see workspace_root.ts).
   */
  readonly workspaceRoot: string;
  /** Leave workspaces in place after their jobs. */
  readonly keepWorkspaces: boolean;
  /** Run jobs as this user (checked by prepareRunAs); as the worker's own user when absent. */
  readonly runAs?: RunAsUser;
}

/** A running worker. */
export interface RunningWorker extends AsyncDisposable {
  /** Resolves once the worker has stopped. */
  readonly finished: Promise<void>;
  /** Jobs running now. */
  readonly runningJobs: number;
  /** Stops claiming; running jobs get the grace period, then are handed back. */
  shutdown(): void;
  /** Stops running jobs now and hands them back. */
  stopNow(): void;
  /** Stops at once and waits until stopped; idempotent. */
  close(): Promise<void>;
}

/** Starts a worker. */
export function startWorker(options: WorkerOptions): RunningWorker {
  const { api, queues, clock, logger } = options;
  if (queues.length === 0) throw new RangeError("a worker needs at least one queue");
  const stopClaiming = new AbortController();
  const stopJobs = new AbortController();
  let running = 0;
  // Job groups are recorded beside the workers' areas, so the ledger of a
  // dead worker outlives the removal of its area.
  const stateDir = join(options.workspaceRoot, RUNNING_DIR);
  const claimAndRun = (workspaceRoot: string, groups: JobGroups) => {
    const deps = {
      api,
      clock,
      logger,
      baseEnv: options.baseEnv,
      visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
      killGraceMs: options.killGraceMs,
      workspaceRoot,
      keepWorkspaces: options.keepWorkspaces,
      groups,
      ...(options.runAs === undefined ? {} : { runAs: options.runAs }),
    };
    return runClaimLoop({
      claim: (max, signal) =>
        api.claim(queues[0]!, {
          maxJobs: Math.min(max, MAX_DEQUEUE_JOBS),
          visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
          signal,
          ...(queues.length > 1 ? { queues } : {}),
        }),
      handle: async (leased) => {
        running++;
        try {
          await executeJob(leased, deps, stopJobs.signal);
        } finally {
          running--;
        }
      },
      concurrency: options.concurrency,
      clock,
      logger,
      signal: stopClaiming.signal,
    });
  };
  // Nothing is made or read under a root that is not the worker's own (a
  // planted ledger or symlink); then, before anything is claimed, a job of
  // a dead worker must not run beside its next attempt, and dead workers'
  // workspaces are removed.
  let groups: WorkerJobGroups | undefined;
  const finished = (async () => {
    const uid = await effectiveUid();
    await secureWorkspaceRoot(options.workspaceRoot, uid);
    groups = openJobGroups(stateDir, logger);
    await killLeftoverGroups(stateDir, logger, uid).catch((error) => {
      logger.warn({ err: error }, "could not look for job processes that earlier workers left");
    });
    const area = await claimWorkspaceArea(options.workspaceRoot, {
      keep: options.keepWorkspaces,
      logger,
    });
    try {
      // A job run as another user passes through this worker's area to its home.
      if (options.runAs !== undefined) await Deno.chmod(area.dir, 0o711);
      await claimAndRun(area.dir, groups);
    } finally {
      await area.release();
    }
  })();
  logger.info({ queues, concurrency: options.concurrency }, "worker started");

  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const shutdown = () => {
    if (stopClaiming.signal.aborted) return;
    logger.info({ graceMs: options.shutdownGraceMs }, "worker shutting down");
    stopClaiming.abort();
    graceTimer = setTimeout(stopNow, options.shutdownGraceMs);
  };
  const stopNow = () => {
    stopClaiming.abort();
    stopJobs.abort();
  };
  const done = finished.finally(() => clearTimeout(graceTimer)).finally(() => groups?.close())
    .then(() => api.close?.());
  const close = async () => {
    stopNow();
    await done;
  };
  return {
    finished: done,
    get runningJobs() {
      return running;
    },
    shutdown,
    stopNow,
    close,
    [Symbol.asyncDispose]: close,
  };
}
