/**
 * Running one leased job: start its command, stream its output as batched
 * events, keep its lease, enforce its timeout, and report how it ended.
 *
 * Events of one attempt, in order: PROCESS_START, OUTPUT_BATCH..., then
 * PROCESS_END; or PROCESS_ERROR alone when the command cannot start. A
 * timeout adds PROCESS_ERROR ("timed out ...") before PROCESS_END; a
 * shutdown adds PROCESS_ERROR after it. Output read before a lifecycle event
 * is always published before it.
 *
 * How an attempt ends:
 * - the command exits: the job is completed (COMPLETED on 0, else FAILED);
 * - it cannot start (not found, not runnable, its repository cannot be
 *   checked out): FAILED at once, never redelivered;
 * - the lease is lost: the command is stopped and nothing is completed (the
 *   attempt that holds the job now will report);
 * - the server refuses the job's events: the command is stopped and the job
 *   FAILED with the reason;
 * - the worker stops (`stop` aborts): the command is stopped and the job is
 *   handed back to the queue. Everything after `stop` is bounded in time.
 *
 * @module
 */
import { record } from "../telemetry/metrics.ts";
import {
  contextFromTraceparent,
  currentTraceparent,
  inSpan,
  SpanKind,
  TRACEPARENT_METADATA_KEY,
} from "../telemetry/tracing.ts";
import { create } from "@bufbuild/protobuf";
import { join } from "node:path";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type JobResult, JobResultSchema, ProcessType } from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { LeasedJob } from "../protocol/job_requests.ts";
import { AttemptEvents } from "./attempt_events.ts";
import { retry } from "../retry.ts";
import { EventBatcher, MAX_CHUNK_BYTES } from "./event_batcher.ts";
import { EventPublisher } from "./event_publisher.ts";
import {
  heartbeatEvent,
  processEndEvent,
  processErrorEvent,
  processStartEvent,
  terminalResizeEvent,
} from "./job_events.ts";
import { keepLease } from "./lease_keeper.ts";
import { OutputBudget } from "./output_budget.ts";
import { pumpOutput } from "./output_pump.ts";
import { maskSecretsInText, secretPatterns } from "./secret_masker.ts";
import { checkOut, CheckoutError, workingDirectoryIn, type Workspace } from "./workspace.ts";
import { createJobHome, handOver, letThrough, withIdentity } from "./job_home.ts";
import type { JobGroups } from "./job_groups.ts";
import type { RunAsUser } from "./run_as.ts";
import { windowSizeFor } from "./pty.ts";
import { ProcessStartError, type RunningProcess, startProcess } from "./process_runner.ts";
import { isRetryable, isRetryableLeaseCall, type WorkerApi } from "./worker_api.ts";

/** Exit code reported for a job stopped by its timeout (as `timeout(1)` does). */
export const TIMEOUT_EXIT_CODE = 124;
/** Longest the worker spends publishing and handing back after it was told to stop. */
export const STOP_CLEANUP_MS = 5_000;
/** How long a finished command's pipes may stay open (held by an escaped child). */
const DRAIN_AFTER_EXIT_MS = 2_000;

/** What job execution needs from the worker. */
export interface JobExecutionDeps {
  readonly api: WorkerApi;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The worker's environment, which the job's own entries override. */
  readonly baseEnv: Readonly<Record<string, string>>;
  readonly visibilityTimeoutSeconds: number;
  /** Between SIGTERM and SIGKILL when a job must stop. */
  readonly killGraceMs: number;
  /** Longest spent publishing and handing back after `stop` (default {@link STOP_CLEANUP_MS}). */
  readonly stopCleanupMs?: number;
  /** Where jobs' repositories are checked out. */
  readonly workspaceRoot: string;
  /** Leave workspaces in place after their jobs (for debugging). */
  readonly keepWorkspaces: boolean;
  /** Told of every job process group started and ended, so none outlives the worker. */
  readonly groups?: JobGroups;
  /** Run jobs as this user, each with a home of its own (see run_as.ts). */
  readonly runAs?: RunAsUser;
}

/** How an execution ended. */
export type JobOutcome =
  | { readonly kind: "completed"; readonly result: JobResult }
  /** The lease was lost (a newer attempt holds the job): nothing was completed. */
  | { readonly kind: "lease_lost"; readonly reason: unknown }
  /** The worker stopped the job and handed it back for another attempt. */
  | { readonly kind: "handed_back" }
  /** The worker stopped and could not report; the lease will expire. */
  | { readonly kind: "abandoned"; readonly reason: unknown };

type StopReason = "timeout" | "lease_lost" | "shutdown" | "publish_failed" | "cancelled";

/**
 * Runs `leased` to its end (see the module comment for the outcomes), in a
 * span that continues the trace its submitter started (the job's
 * `traceparent` metadata), so the job's whole life is one trace.
 */
export function executeJob(
  leased: LeasedJob,
  deps: JobExecutionDeps,
  stop: AbortSignal,
): Promise<JobOutcome> {
  const { job } = leased;
  return inSpan("airunner.job", {
    kind: SpanKind.CONSUMER,
    parent: contextFromTraceparent(job.jobParams?.metadata[TRACEPARENT_METADATA_KEY]),
    attributes: {
      "airunner.job_id": job.jobId,
      "airunner.queue": job.queue,
      "airunner.attempt": job.attempt,
    },
  }, async (span) => {
    const outcome = await runAttempt(leased, deps, stop);
    span.setAttribute("airunner.outcome", outcome.kind);
    if (outcome.kind === "completed") {
      span.setAttribute("airunner.exit_code", outcome.result.exitCode);
    }
    return outcome;
  });
}

async function runAttempt(
  leased: LeasedJob,
  deps: JobExecutionDeps,
  stop: AbortSignal,
): Promise<JobOutcome> {
  const { api, clock } = deps;
  const { job, taskToken } = leased;
  const params = job.jobParams;
  const log = deps.logger.child({ jobId: job.jobId, attempt: job.attempt });

  const leaseLost = new AbortController();
  const loseLease = (error: unknown) => {
    if (!leaseLost.signal.aborted) leaseLost.abort(error);
  };
  let stopProcess: (reason: StopReason) => void = () => {};
  let cancelled = false;
  let publishFailure: unknown;
  const publisher = new EventPublisher({
    publish: (events) => api.publishEvents(taskToken, events),
    isRetryable,
    clock,
    logger: log,
    // Through an outage the job keeps running; its events wait on disk.
    maxPendingBytes: 4 * 1024 * 1024,
    spill: {
      path: join(deps.workspaceRoot, `events-${job.jobId}-${job.attempt}.spill`),
      limitBytes: 1024 * 1024 * 1024,
    },
    onFailure: (error) => {
      if (isLeaseLost(error)) {
        loseLease(error);
      } else {
        publishFailure = error;
        stopProcess("publish_failed");
      }
    },
  });
  const batching = job.executionConfig?.batching;
  const events = new AttemptEvents(
    new EventBatcher({
      maxItems: positive(batching?.maxBatchSize, 50),
      maxBytes: positive(Number(batching?.maxBatchBytes ?? 0n), 256 * 1024),
      flushIntervalMs: positive(batching?.flushIntervalSeconds, 2) * 1000,
      idleFlushMs: job.executionConfig?.outputFlushIntervalMillis ?? 0,
      maxChunkBytes: MAX_CHUNK_BYTES,
    }),
    publisher,
    batching?.playbackIntervalMillis ?? 0,
    new OutputBudget(job.executionConfig?.maxOutputBytes ?? 0n),
  );

  const leaseDone = new AbortController();
  const keeping = keepLease({
    extend: () => api.extendLease(taskToken, job.queue, deps.visibilityTimeoutSeconds),
    isRetryable: isRetryableLeaseCall,
    visibilityTimeoutMs: deps.visibilityTimeoutSeconds * 1000,
    clock,
    logger: log,
    signal: leaseDone.signal,
    onLost: loseLease,
    onCancelled: () => {
      cancelled = true;
      stopProcess("cancelled");
    },
  });
  // Retrying (to publish or complete) ends when the lease is lost or the worker must stop.
  const giveUp = AbortSignal.any([leaseLost.signal, stop]);

  /** Publishes everything, then records the result; or says why it could not. */
  const finish = async (result: Omit<JobResult, "$typeName" | "jobId">): Promise<JobOutcome> => {
    await events.settled();
    try {
      await publisher.drain();
    } catch (error) {
      if (isLeaseLost(error)) return { kind: "lease_lost", reason: error };
      result = {
        ...result,
        success: false,
        exitCode: result.exitCode === 0 ? 1 : result.exitCode,
        errorMessage: `the server refused the job's events: ${describe(error)}`,
      };
    }
    const full = create(JobResultSchema, { ...result, jobId: job.jobId });
    try {
      await retrying(() => api.complete(taskToken, full), clock, giveUp);
    } catch (error) {
      if (isLeaseLost(error) || leaseLost.signal.aborted) {
        return { kind: "lease_lost", reason: leaseLost.signal.reason ?? error };
      }
      if (stop.aborted) return { kind: "abandoned", reason: error };
      throw error;
    }
    return { kind: "completed", result: full };
  };

  // The job's secret values, masked in its output and in what the worker says about it.
  const secrets = secretPatterns(Object.values(params?.secretEnvironment ?? {}));
  let workspace: Workspace | undefined;
  /** The command while it runs (until its group is killed after it exited). */
  let running: RunningProcess | undefined;
  const failWithoutRunning = async (error: ProcessStartError): Promise<JobOutcome> => {
    // A checkout's message quotes git, which may print what it got from the environment.
    const message = maskSecretsInText(error.message, secrets);
    log.info({ reason: message }, "job could not start");
    void events.lifecycle((seq) => processErrorEvent(seq, message, clock.now()));
    const now = timestampFromMs(clock.now());
    return await finish({
      success: false,
      exitCode: error.exitCode,
      errorMessage: message,
      startedAt: now,
      completedAt: now,
    });
  };

  try {
    const command = params?.command.trim() ?? "";
    if (command === "") {
      return await failWithoutRunning(new ProcessStartError("job has no command", 126));
    }
    // Secrets reach the process like any other variable (validation keeps their names apart).
    let env = jobEnvironment(
      deps.baseEnv,
      { ...params?.environment, ...params?.secretEnvironment },
      leased,
    );
    let cwd = params?.workingDirectory || undefined;
    if (params !== undefined && params.repository !== "") {
      try {
        workspace = await checkOut({
          root: deps.workspaceRoot,
          name: `${job.jobId}-${job.attempt}`,
          repository: params.repository,
          commit: params.commit,
          branch: params.branch,
          env: deps.baseEnv, // never the job's own entries: see CheckoutRequest.env
          signal: giveUp,
        }, deps.keepWorkspaces);
        cwd = workingDirectoryIn(workspace.dir, params.workingDirectory);
      } catch (error) {
        if (leaseLost.signal.aborted) {
          return { kind: "lease_lost", reason: leaseLost.signal.reason };
        }
        if (stop.aborted) return await handBack();
        if (error instanceof CheckoutError) {
          return await failWithoutRunning(new ProcessStartError(error.message, 126));
        }
        throw error;
      }
    }
    if (deps.runAs !== undefined) {
      const user = deps.runAs;
      try {
        if (workspace === undefined) {
          workspace = await createJobHome(
            deps.workspaceRoot,
            `${job.jobId}-${job.attempt}`,
            user,
            deps.keepWorkspaces,
          );
          cwd ??= workspace.dir;
        } else {
          await handOver(workspace.dir, user);
        }
        await letThrough(deps.workspaceRoot, workspace.dir);
      } catch (error) {
        return await failWithoutRunning(
          new ProcessStartError(
            `cannot make the job's home for ${user.name}: ${describe(error)}`,
            126,
          ),
        );
      }
      env = withIdentity(env, params?.environment ?? {}, user, workspace.dir);
    }

    const startedMs = clock.now();
    const pty = params?.processType === ProcessType.PTY ? windowSizeFor(env) : undefined;
    let proc: RunningProcess;
    try {
      proc = startProcess({
        command,
        args: params?.args ?? [],
        env,
        ...(cwd === undefined ? {} : { cwd }),
        ...(pty === undefined ? {} : { pty }),
        ...(deps.runAs === undefined ? {} : { runAs: deps.runAs }),
      });
    } catch (error) {
      if (error instanceof ProcessStartError) return await failWithoutRunning(error);
      throw error;
    }
    deps.groups?.started(proc.pid, job.jobId, job.attempt);
    running = proc;
    log.info({ pid: proc.pid, command }, "job started");
    const createdMs = job.createdAt === undefined
      ? undefined
      : timestampDate(job.createdAt).getTime();
    if (createdMs !== undefined) record("airunner.jobs.time_to_start", startedMs - createdMs);
    void events.lifecycle((seq) => processStartEvent(seq, proc.pid, startedMs));
    if (pty !== undefined) {
      void events.lifecycle((seq) => terminalResizeEvent(seq, pty.cols, pty.rows, clock.now()));
    }

    let stopReason: StopReason | undefined;
    stopProcess = (reason) => {
      if (stopReason !== undefined) return;
      stopReason = reason;
      if (reason === "cancelled") {
        void events.lifecycle((seq) =>
          processErrorEvent(seq, "the job was cancelled", clock.now())
        );
      }
      void terminate(proc, deps.killGraceMs, clock);
    };
    const timeoutSeconds = params?.timeoutSeconds ?? 0;
    const exited = new AbortController();
    void proc.exit.finally(() => exited.abort());
    if (timeoutSeconds > 0) {
      void clock.sleep(timeoutSeconds * 1000, exited.signal).then(() => {
        if (exited.signal.aborted || stopReason !== undefined) return;
        void events.lifecycle((seq) =>
          processErrorEvent(seq, `timed out after ${timeoutSeconds} s`, clock.now())
        );
        stopProcess("timeout");
      });
    }
    if (cancelled) stopProcess("cancelled"); // cancelled before the command started
    const onLeaseLost = () => stopProcess("lease_lost");
    const onStop = () => stopProcess("shutdown");
    leaseLost.signal.addEventListener("abort", onLeaseLost, { once: true });
    stop.addEventListener("abort", onStop, { once: true });
    if (leaseLost.signal.aborted) onLeaseLost();
    if (stop.aborted) onStop();

    const heartbeats = sendHeartbeats(
      (elapsedMs) => events.lifecycle((seq) => heartbeatEvent(seq, elapsedMs, true, clock.now())),
      (job.executionConfig?.heartbeatIntervalSeconds ?? 0) * 1000,
      startedMs,
      clock,
      exited.signal,
    );
    const pumping = pumpOutput({
      stdout: proc.stdout,
      stderr: proc.stderr,
      events,
      clock,
      exited: proc.exit,
      drainAfterExitMs: DRAIN_AFTER_EXIT_MS,
      secretPatterns: secrets,
      maxHoldMs: job.executionConfig?.outputFlushIntervalMillis ||
        positive(batching?.flushIntervalSeconds, 2) * 1000,
    });
    const exit = await proc.exit;
    // Whatever the command left running in its process group goes with it.
    proc.kill("SIGKILL");
    deps.groups?.ended(proc.pid);
    running = undefined;
    stop.removeEventListener("abort", onStop);
    leaseLost.signal.removeEventListener("abort", onLeaseLost);
    await pumping;
    await heartbeats;
    const endedMs = clock.now();

    const outcome = stopReason === "lease_lost" || leaseLost.signal.aborted
      ? "lost"
      : stopReason === "timeout"
      ? "timed_out"
      : stopReason === "cancelled"
      ? "cancelled"
      : stopReason === "shutdown"
      ? "handed_back"
      : exit.exitCode === 0
      ? "succeeded"
      : "failed";
    record("airunner.jobs.duration", endedMs - startedMs, { outcome });
    if (stopReason === "lease_lost" || leaseLost.signal.aborted) {
      await publisher.stop(leaseLost.signal.reason);
      log.warn({ err: leaseLost.signal.reason }, "lease lost; the job was stopped");
      return { kind: "lease_lost", reason: leaseLost.signal.reason };
    }
    void events.lifecycle((seq) =>
      processEndEvent(seq, proc.pid, exit.exitCode, endedMs - startedMs, endedMs)
    );
    if (stopReason === "shutdown") return await handBack();

    const timedOut = stopReason === "timeout";
    const exitCode = timedOut ? TIMEOUT_EXIT_CODE : exit.exitCode;
    log.info({ exitCode, durationMs: endedMs - startedMs }, "job finished");
    return await finish({
      success: exitCode === 0,
      exitCode,
      errorMessage: timedOut
        ? `timed out after ${timeoutSeconds} s`
        : stopReason === "cancelled"
        ? "cancelled; the command was stopped"
        : stopReason === "publish_failed"
        ? `the server refused the job's events: ${describe(publishFailure)}`
        : exitCode === 0
        ? ""
        : exit.signal !== null
        ? `killed by ${exit.signal}`
        : `exited with code ${exitCode}`,
      startedAt: timestampFromMs(startedMs),
      completedAt: timestampFromMs(endedMs),
    });
  } finally {
    if (running !== undefined) {
      // Something failed while the command ran: it must not run on unseen.
      running.kill("SIGKILL");
      deps.groups?.ended(running.pid);
    }
    leaseDone.abort();
    await publisher.stop(new Error("the attempt is over"));
    await keeping;
    await workspace?.remove();
  }

  /** Says why the job stops, hands it back to the queue; bounded by STOP_CLEANUP_MS. */
  async function handBack(): Promise<JobOutcome> {
    void events.lifecycle((seq) =>
      processErrorEvent(
        seq,
        "the worker shut down before the command finished; the job goes back to the queue",
        clock.now(),
      )
    );
    const deadline = AbortSignal.timeout(deps.stopCleanupMs ?? STOP_CLEANUP_MS);
    try {
      await Promise.race([
        events.settled().then(() => publisher.drain()),
        new Promise((_, reject) =>
          deadline.addEventListener("abort", () => reject(deadline.reason))
        ),
      ]);
      await Promise.race([
        api.extendLease(taskToken, job.queue, 0),
        new Promise((_, reject) =>
          deadline.addEventListener("abort", () => reject(deadline.reason))
        ),
      ]);
    } catch (error) {
      log.warn({ err: error }, "could not hand the job back; it returns when its lease expires");
      return { kind: "abandoned", reason: error };
    }
    log.info("job handed back");
    return { kind: "handed_back" };
  }
}

/**
 * The job's environment: the worker's, then the job's own entries, then the
 * AIRUNNER_* facts about this run. The worker's credentials never pass.
 */
export function jobEnvironment(
  base: Readonly<Record<string, string>>,
  own: Readonly<Record<string, string>>,
  leased: LeasedJob,
): Record<string, string> {
  const env: Record<string, string> = { ...base, ...own };
  delete env.AIRUNNER_TOKEN;
  env.AIRUNNER_JOB_ID = leased.job.jobId;
  env.AIRUNNER_QUEUE = leased.job.queue;
  env.AIRUNNER_ATTEMPT = String(leased.job.attempt);
  // The job's process continues the job's trace (W3C Trace Context, as
  // OpenTelemetry SDKs read it from TRACEPARENT) unless the job sets its own.
  const traceparent = currentTraceparent();
  if (traceparent !== undefined && own.TRACEPARENT === undefined) env.TRACEPARENT = traceparent;
  return env;
}

/** SIGTERM to the process group, then SIGKILL if it outlives the grace period. */
async function terminate(proc: RunningProcess, graceMs: number, clock: Clock): Promise<void> {
  proc.kill("SIGTERM");
  const exited = new AbortController();
  void proc.exit.then(() => exited.abort());
  await clock.sleep(graceMs, exited.signal);
  if (!exited.signal.aborted) proc.kill("SIGKILL");
}

async function sendHeartbeats(
  send: (elapsedMs: number) => Promise<void>,
  intervalMs: number,
  startedMs: number,
  clock: Clock,
  signal: AbortSignal,
): Promise<void> {
  if (intervalMs <= 0) return;
  while (!signal.aborted) {
    await clock.sleep(intervalMs, signal);
    if (signal.aborted) return;
    await send(clock.now() - startedMs);
  }
}

/** Retries `call` while it fails in a way that may pass, until `signal` aborts. */
function retrying(call: () => Promise<void>, clock: Clock, signal: AbortSignal): Promise<void> {
  return retry(call, { isRetryable: isRetryableLeaseCall, clock, signal });
}

/** Whether the server said the lease is gone (a newer attempt holds the job, or it finished). */
function isLeaseLost(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.FailedPrecondition;
}

function describe(error: unknown): string {
  return error instanceof ConnectError
    ? error.rawMessage
    : error instanceof Error
    ? error.message
    : String(error);
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && value > 0 ? value : fallback;
}
