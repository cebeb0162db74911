/**
 * The wiring of one attempt (see job_execution.ts for its events and
 * outcomes): the event publisher and lease keeper it starts, the workspace
 * and identity it prepares, the process it runs and watches, and the report
 * it makes of what attempt_outcome.ts decides the end means.
 *
 * @module
 */
import { count, record } from "../telemetry/metrics.ts";
import { currentTraceparent } from "../telemetry/tracing.ts";
import { create } from "@bufbuild/protobuf";
import { join } from "node:path";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import {
  type JobEvent,
  type JobResult,
  JobResultSchema,
  ProcessType,
} from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { LeasedJob } from "../protocol/job_requests.ts";
import { AttemptEvents, type LifecycleEventBuilder } from "./attempt_events.ts";
import {
  type AttemptEnd,
  attemptVerdict,
  durationOutcome,
  type StopReason,
  withRefusedEvents,
} from "./attempt_outcome.ts";
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
import { createJobHome, letThrough, withIdentity } from "./job_home.ts";
import type { JobExecutionDeps, JobOutcome } from "./job_execution.ts";
import { windowSizeFor } from "./pty.ts";
import { ProcessStartError, type RunningProcess, startProcess } from "./process_runner.ts";
import {
  isLeaseLostError,
  isRetryable,
  isRetryableCompletion,
  isRetryableLeaseCall,
  LastEventsRefusedError,
} from "./worker_api.ts";

/** Longest the worker spends publishing and handing back after it was told to stop. */
export const STOP_CLEANUP_MS = 5_000;
/** How long a finished command's pipes may stay open (held by an escaped child). */
const DRAIN_AFTER_EXIT_MS = 2_000;

/** Runs one attempt of `leased` to its outcome. */
export async function runAttempt(
  leased: LeasedJob,
  deps: JobExecutionDeps,
  stop: AbortSignal,
): Promise<JobOutcome> {
  return await new Attempt(leased, deps, stop).run();
}

/** What a job's command starts with, once its workspace and identity are ready. */
interface PreparedCommand {
  readonly command: string;
  readonly env: Record<string, string>;
  readonly cwd: string | undefined;
}

/** The wiring of one attempt: its publisher, lease keeper, process and reports. */
class Attempt {
  readonly #leased: LeasedJob;
  readonly #deps: JobExecutionDeps;
  /** Aborts when the worker must stop. */
  readonly #stop: AbortSignal;
  readonly #log: Logger;
  readonly #leaseLost = new AbortController();
  readonly #leaseDone = new AbortController();
  readonly #publisher: EventPublisher;
  readonly #events: AttemptEvents;
  readonly #keeping: Promise<void>;
  /** Retrying (to publish or complete) ends when the lease is lost or the worker must stop. */
  readonly #giveUp: AbortSignal;
  /** The job's secret values, masked in its output and in what the worker says about it. */
  readonly #secrets: ReturnType<typeof secretPatterns>;
  /** The job was cancelled (perhaps before its command started). */
  #cancelled = false;
  #publishFailure: unknown;
  #workspace: Workspace | undefined;
  /** The command once started: what a stop request stops. */
  #started: RunningProcess | undefined;
  /** The command while it runs (until its group is killed after it exited). */
  #running: RunningProcess | undefined;
  /** The first reason the command was stopped for. */
  #stopReason: StopReason | undefined;

  constructor(leased: LeasedJob, deps: JobExecutionDeps, stop: AbortSignal) {
    this.#leased = leased;
    this.#deps = deps;
    this.#stop = stop;
    const { api, clock } = deps;
    const { job, taskToken } = leased;
    const log = deps.logger.child({ jobId: job.jobId, attempt: job.attempt });
    this.#log = log;
    this.#publisher = new EventPublisher({
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
        if (isLeaseLostError(error)) {
          this.#loseLease(error);
        } else {
          this.#publishFailure = error;
          this.#stopProcess("publish_failed");
        }
      },
    });
    const batching = job.executionConfig?.batching;
    this.#events = new AttemptEvents(
      new EventBatcher({
        maxItems: positive(batching?.maxBatchSize, 50),
        maxBytes: positive(Number(batching?.maxBatchBytes ?? 0n), 256 * 1024),
        flushIntervalMs: positive(batching?.flushIntervalSeconds, 2) * 1000,
        idleFlushMs: job.executionConfig?.outputFlushIntervalMillis ?? 0,
        maxChunkBytes: MAX_CHUNK_BYTES,
      }),
      this.#publisher,
      batching?.playbackIntervalMillis ?? 0,
      new OutputBudget(job.executionConfig?.maxOutputBytes ?? 0n),
    );
    this.#keeping = keepLease({
      extend: () => api.extendLease(taskToken, job.queue, deps.visibilityTimeoutSeconds),
      isRetryable: isRetryableLeaseCall,
      visibilityTimeoutMs: deps.visibilityTimeoutSeconds * 1000,
      clock,
      logger: log,
      signal: this.#leaseDone.signal,
      onLost: (error) => this.#loseLease(error),
      onCancelled: () => {
        this.#cancelled = true;
        this.#stopProcess("cancelled");
      },
    });
    this.#giveUp = AbortSignal.any([this.#leaseLost.signal, stop]);
    this.#secrets = secretPatterns(Object.values(job.jobParams?.secretEnvironment ?? {}));
  }

  /** Runs the attempt to its outcome; nothing of it outlives the call. */
  async run(): Promise<JobOutcome> {
    try {
      const prepared = await this.#prepare();
      return "kind" in prepared ? prepared : await this.#runCommand(prepared);
    } finally {
      if (this.#running !== undefined) {
        // Something failed while the command ran: it must not run on unseen.
        this.#running.kill("SIGKILL");
        this.#deps.groups?.ended(this.#running.pid);
      }
      this.#leaseDone.abort();
      await this.#publisher.stop(new Error("the attempt is over"));
      await this.#keeping;
      await this.#workspace?.remove();
    }
  }

  #loseLease(error: unknown): void {
    if (!this.#leaseLost.signal.aborted) this.#leaseLost.abort(error);
  }

  /** Stops the command (once started) for `reason`; the first reason stands. */
  #stopProcess(reason: StopReason): void {
    const proc = this.#started;
    if (proc === undefined || this.#stopReason !== undefined) return;
    this.#stopReason = reason;
    if (reason === "cancelled") {
      void this.#events.lifecycle((seq) =>
        processErrorEvent(seq, "the job was cancelled", this.#deps.clock.now())
      );
    }
    void terminate(proc, this.#deps.killGraceMs, this.#deps.clock);
  }

  /** The command, its environment and directory (checked out, owned); or why it cannot run. */
  async #prepare(): Promise<PreparedCommand | JobOutcome> {
    const deps = this.#deps;
    const { job } = this.#leased;
    const params = job.jobParams;
    const command = params?.command.trim() ?? "";
    if (command === "") {
      return await this.#failWithoutRunning(new ProcessStartError("job has no command", 126));
    }
    // Secrets reach the process like any other variable (validation keeps their names apart).
    let env = jobEnvironment(
      deps.baseEnv,
      { ...params?.environment, ...params?.secretEnvironment },
      this.#leased,
    );
    let cwd = params?.workingDirectory || undefined;
    if (params !== undefined && params.repository !== "") {
      try {
        this.#workspace = await checkOut({
          root: deps.workspaceRoot,
          name: `${job.jobId}-${job.attempt}`,
          repository: params.repository,
          commit: params.commit,
          branch: params.branch,
          env: deps.baseEnv, // never the job's own entries: see CheckoutRequest.env
          signal: this.#giveUp,
          ...(deps.runAs === undefined ? {} : { runAs: deps.runAs }),
        }, deps.keepWorkspaces);
        cwd = workingDirectoryIn(this.#workspace.dir, params.workingDirectory);
      } catch (error) {
        if (this.#leaseLost.signal.aborted) {
          return { kind: "lease_lost", reason: this.#leaseLost.signal.reason };
        }
        if (this.#stop.aborted) return await this.#handBack();
        if (error instanceof CheckoutError) {
          return await this.#failWithoutRunning(new ProcessStartError(error.message, 126));
        }
        throw error;
      }
    }
    if (deps.runAs !== undefined) {
      const user = deps.runAs;
      let workspace = this.#workspace;
      try {
        if (workspace === undefined) {
          workspace = await createJobHome(
            deps.workspaceRoot,
            `${job.jobId}-${job.attempt}`,
            user,
            deps.keepWorkspaces,
          );
          this.#workspace = workspace;
          cwd ??= workspace.dir;
        }
        await letThrough(deps.workspaceRoot, workspace.dir);
      } catch (error) {
        return await this.#failWithoutRunning(
          new ProcessStartError(
            `cannot make the job's home for ${user.name}: ${describe(error)}`,
            126,
          ),
        );
      }
      env = withIdentity(env, params?.environment ?? {}, user, workspace.dir);
    }
    return { command, env, cwd };
  }

  /** Starts the command, streams its output until it exits, and reports how it ended. */
  async #runCommand({ command, env, cwd }: PreparedCommand): Promise<JobOutcome> {
    const { clock, groups, runAs } = this.#deps;
    const { job } = this.#leased;
    const params = job.jobParams;
    const events = this.#events;
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
        ...(runAs === undefined ? {} : { runAs }),
      });
    } catch (error) {
      if (error instanceof ProcessStartError) return await this.#failWithoutRunning(error);
      throw error;
    }
    groups?.started(proc.pid, job.jobId, job.attempt);
    this.#running = proc;
    this.#log.info({ pid: proc.pid, command }, "job started");
    const createdMs = job.createdAt === undefined
      ? undefined
      : timestampDate(job.createdAt).getTime();
    if (createdMs !== undefined) record("airunner.jobs.time_to_start", startedMs - createdMs);
    void events.lifecycle((seq) => processStartEvent(seq, proc.pid, startedMs));
    if (pty !== undefined) {
      void events.lifecycle((seq) => terminalResizeEvent(seq, pty.cols, pty.rows, clock.now()));
    }
    const watch = this.#watch(proc);
    const heartbeats = sendHeartbeats(
      (elapsedMs) => events.lifecycle((seq) => heartbeatEvent(seq, elapsedMs, true, clock.now())),
      (job.executionConfig?.heartbeatIntervalSeconds ?? 0) * 1000,
      startedMs,
      clock,
      watch.exited,
    );
    const pumping = pumpOutput({
      stdout: proc.stdout,
      stderr: proc.stderr,
      events,
      clock,
      exited: proc.exit,
      drainAfterExitMs: DRAIN_AFTER_EXIT_MS,
      secretPatterns: this.#secrets,
      maxHoldMs: job.executionConfig?.outputFlushIntervalMillis ||
        positive(job.executionConfig?.batching?.flushIntervalSeconds, 2) * 1000,
    });
    const exit = await proc.exit;
    // Whatever the command left running in its process group goes with it.
    proc.kill("SIGKILL");
    groups?.ended(proc.pid);
    this.#running = undefined;
    watch.unwatch();
    await pumping;
    await heartbeats;
    const endedMs = clock.now();
    const end: AttemptEnd = {
      stopReason: this.#stopReason,
      leaseLost: this.#leaseLost.signal.aborted,
      exit,
      timeoutSeconds: watch.timeoutSeconds,
      publishFailure: this.#publishFailure === undefined ? "" : describe(this.#publishFailure),
    };
    record("airunner.jobs.duration", endedMs - startedMs, { outcome: durationOutcome(end) });
    return await this.#conclude(end, proc.pid, startedMs, endedMs);
  }

  /**
   * Stops the running command on its timeout, a lost lease, a cancel or the
   * worker's stop; `unwatch` once it exited.
   */
  #watch(proc: RunningProcess): {
    exited: AbortSignal;
    timeoutSeconds: number;
    unwatch: () => void;
  } {
    const { clock } = this.#deps;
    this.#started = proc;
    const timeoutSeconds = this.#leased.job.jobParams?.timeoutSeconds ?? 0;
    const exited = new AbortController();
    void proc.exit.finally(() => exited.abort());
    if (timeoutSeconds > 0) {
      void clock.sleep(timeoutSeconds * 1000, exited.signal).then(() => {
        if (exited.signal.aborted || this.#stopReason !== undefined) return;
        void this.#events.lifecycle((seq) =>
          processErrorEvent(seq, `timed out after ${timeoutSeconds} s`, clock.now())
        );
        this.#stopProcess("timeout");
      });
    }
    if (this.#cancelled) this.#stopProcess("cancelled"); // cancelled before the command started
    const onLeaseLost = () => this.#stopProcess("lease_lost");
    const onStop = () => this.#stopProcess("shutdown");
    const leaseLost = this.#leaseLost.signal;
    leaseLost.addEventListener("abort", onLeaseLost, { once: true });
    this.#stop.addEventListener("abort", onStop, { once: true });
    if (leaseLost.aborted) onLeaseLost();
    if (this.#stop.aborted) onStop();
    return {
      exited: exited.signal,
      timeoutSeconds,
      unwatch: () => {
        this.#stop.removeEventListener("abort", onStop);
        leaseLost.removeEventListener("abort", onLeaseLost);
      },
    };
  }

  /** Acts on what the command's end means (see attempt_outcome.ts). */
  async #conclude(
    end: AttemptEnd,
    pid: number,
    startedMs: number,
    endedMs: number,
  ): Promise<JobOutcome> {
    const verdict = attemptVerdict(end);
    if (verdict.kind === "lease_lost") {
      const reason = this.#leaseLost.signal.reason;
      await this.#publisher.stop(reason);
      this.#log.warn({ err: reason }, "lease lost; the job was stopped");
      return { kind: "lease_lost", reason };
    }
    const endEvent: LifecycleEventBuilder = (seq) =>
      processEndEvent(seq, pid, end.exit.exitCode, endedMs - startedMs, endedMs);
    if (verdict.kind === "hand_back") {
      void this.#events.lifecycle(endEvent);
      return await this.#handBack();
    }
    // The end event (and output not yet sent) waits to go with the result.
    this.#publisher.holdLast();
    void this.#events.lifecycle(endEvent);
    const { result } = verdict;
    this.#log.info({ exitCode: result.exitCode, durationMs: endedMs - startedMs }, "job finished");
    return await this.#finish({
      ...result,
      startedAt: timestampFromMs(startedMs),
      completedAt: timestampFromMs(endedMs),
    });
  }

  /** Publishes everything, then records the result; or says why it could not. */
  async #finish(result: Omit<JobResult, "$typeName" | "jobId">): Promise<JobOutcome> {
    const { api, clock } = this.#deps;
    const { job, taskToken } = this.#leased;
    await this.#events.settled();
    // The last events travel with the result (one round trip, not two).
    let lastEvents: readonly JobEvent[] = [];
    try {
      lastEvents = await this.#publisher.takeLast();
    } catch (error) {
      if (isLeaseLostError(error)) return { kind: "lease_lost", reason: error };
      result = withRefusedEvents(result, describe(error));
    }
    for (;;) {
      const full = create(JobResultSchema, { ...result, jobId: job.jobId });
      try {
        await retry(() => api.complete(taskToken, { result: full, lastEvents }), {
          isRetryable: isRetryableCompletion,
          clock,
          signal: this.#giveUp,
        });
        return { kind: "completed", result: full };
      } catch (caught) {
        const refused = caught instanceof LastEventsRefusedError;
        const error = refused ? caught.cause : caught;
        const leaseLost = this.#leaseLost.signal;
        if (isLeaseLostError(error) || leaseLost.aborted) {
          return { kind: "lease_lost", reason: leaseLost.reason ?? error };
        }
        if (this.#stop.aborted) return { kind: "abandoned", reason: error };
        if (!refused) throw error;
        // Neither the events nor the result were stored: record the result
        // alone, saying why the job's last events are missing.
        count("airunner.events.dropped.total", lastEvents.length);
        result = withRefusedEvents(result, describe(error));
        lastEvents = [];
      }
    }
  }

  async #failWithoutRunning(error: ProcessStartError): Promise<JobOutcome> {
    const { clock } = this.#deps;
    // A checkout's message quotes git, which may print what it got from the environment.
    const message = maskSecretsInText(error.message, this.#secrets);
    this.#log.info({ reason: message }, "job could not start");
    this.#publisher.holdLast();
    void this.#events.lifecycle((seq) => processErrorEvent(seq, message, clock.now()));
    const now = timestampFromMs(clock.now());
    return await this.#finish({
      success: false,
      exitCode: error.exitCode,
      timedOut: false,
      errorMessage: message,
      startedAt: now,
      completedAt: now,
    });
  }

  /** Says why the job stops, hands it back to the queue; bounded by STOP_CLEANUP_MS. */
  async #handBack(): Promise<JobOutcome> {
    const { api, clock } = this.#deps;
    const { job, taskToken } = this.#leased;
    void this.#events.lifecycle((seq) =>
      processErrorEvent(
        seq,
        "the worker shut down before the command finished; the job goes back to the queue",
        clock.now(),
      )
    );
    const deadline = AbortSignal.timeout(this.#deps.stopCleanupMs ?? STOP_CLEANUP_MS);
    try {
      await Promise.race([
        this.#events.settled().then(() => this.#publisher.drain()),
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
      this.#log.warn(
        { err: error },
        "could not hand the job back; it returns when its lease expires",
      );
      return { kind: "abandoned", reason: error };
    }
    this.#log.info("job handed back");
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
