/**
 * Running one leased job: start its command, stream its output as batched
 * events, keep its lease, enforce its timeout, and report how it ended.
 *
 * Events of one attempt, in order: PROCESS_START, OUTPUT_BATCH..., then
 * PROCESS_END; or PROCESS_ERROR alone when the command cannot start. A
 * timeout adds PROCESS_ERROR ("timed out ...") before PROCESS_END.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type JobEvent,
  JobEventSchema,
  type JobResult,
  JobResultSchema,
} from "../../gen/job/v1/job_pb.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { LeasedJob } from "../store/job_store.ts";
import { backoffDelayMs } from "./backoff.ts";
import { EventBatcher, MAX_CHUNK_BYTES } from "./event_batcher.ts";
import { EventPublisher } from "./event_publisher.ts";
import {
  EventSequencer,
  heartbeatEvent,
  outputBatchEvent,
  processEndEvent,
  processErrorEvent,
  processStartEvent,
} from "./job_events.ts";
import { keepLease } from "./lease_keeper.ts";
import { pumpOutput } from "./output_pump.ts";
import { ProcessStartError, type RunningProcess, startProcess } from "./process_runner.ts";
import { isRetryable, type WorkerApi } from "./worker_api.ts";

/** Exit code reported for a job stopped by its timeout (as `timeout(1)` does). */
export const TIMEOUT_EXIT_CODE = 124;

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
}

/** How an execution ended. */
export type JobOutcome =
  | { readonly kind: "completed"; readonly result: JobResult }
  /** The lease was lost (a newer attempt holds the job): nothing was completed. */
  | { readonly kind: "lease_lost"; readonly reason: unknown }
  /** The worker stopped the job and handed it back for another attempt. */
  | { readonly kind: "handed_back" };

/**
 * Runs `leased` to its end. Aborting `stop` (worker shutdown) kills the
 * command and hands the job back to the queue instead of completing it.
 */
export async function executeJob(
  leased: LeasedJob,
  deps: JobExecutionDeps,
  stop: AbortSignal,
): Promise<JobOutcome> {
  const { api, clock, logger } = deps;
  const { job, taskToken } = leased;
  const params = job.jobParams;
  const log = logger.child({ jobId: job.jobId, attempt: job.attempt });
  const sequencer = new EventSequencer();
  const publisher = new EventPublisher({
    publish: (events) => api.publishEvents(taskToken, events),
    isRetryable,
    clock,
    logger: log,
  });
  const publish = (event: JobEvent) =>
    publisher.append(event, toBinary(JobEventSchema, event).byteLength);

  const leaseLost = new AbortController();
  const finished = new AbortController();
  const keeping = keepLease({
    extend: () => api.extendLease(taskToken, job.queue, deps.visibilityTimeoutSeconds),
    isRetryable,
    visibilityTimeoutMs: deps.visibilityTimeoutSeconds * 1000,
    clock,
    logger: log,
    signal: finished.signal,
    onLost: (error) => leaseLost.abort(error),
  });

  const complete = async (result: Omit<JobResult, "$typeName" | "jobId">) => {
    await publisher.drain();
    const full = create(JobResultSchema, { ...result, jobId: job.jobId });
    await retrying(() => api.complete(taskToken, full), clock, leaseLost.signal);
    return { kind: "completed", result: full } as const;
  };

  try {
    const startedMs = clock.now();
    const command = params?.command.trim() ?? "";
    if (command === "") {
      return await failToStart(new ProcessStartError("job has no command", 126));
    }

    let proc: RunningProcess;
    try {
      proc = startProcess({
        command,
        args: params?.args ?? [],
        env: jobEnvironment(deps.baseEnv, params?.environment ?? {}, leased),
        ...(params?.workingDirectory ? { cwd: params.workingDirectory } : {}),
      });
    } catch (error) {
      if (error instanceof ProcessStartError) return await failToStart(error);
      throw error;
    }
    log.info({ pid: proc.pid, command }, "job started");
    await publish(processStartEvent(sequencer, proc.pid, startedMs));

    // Why the process is being stopped, if it is.
    let stopReason: "timeout" | "lease_lost" | "shutdown" | undefined;
    const timeoutMs = (params?.timeoutSeconds ?? 0) * 1000;
    const timeoutTimer = new AbortController();
    const stopProcess = (reason: NonNullable<typeof stopReason>) => {
      if (stopReason !== undefined) return;
      stopReason = reason;
      void terminate(proc, deps.killGraceMs, clock);
    };
    if (timeoutMs > 0) {
      void clock.sleep(timeoutMs, timeoutTimer.signal).then(() => {
        if (timeoutTimer.signal.aborted) return;
        void publish(
          processErrorEvent(sequencer, `timed out after ${params?.timeoutSeconds} s`, clock.now()),
        ).catch(() => {});
        stopProcess("timeout");
      });
    }
    const onLeaseLost = () => stopProcess("lease_lost");
    const onStop = () => stopProcess("shutdown");
    leaseLost.signal.addEventListener("abort", onLeaseLost, { once: true });
    stop.addEventListener("abort", onStop, { once: true });
    if (stop.aborted) onStop();

    const outputDone = new AbortController();
    const heartbeats = sendHeartbeats(
      (elapsedMs) => publish(heartbeatEvent(sequencer, elapsedMs, true, clock.now())),
      (job.executionConfig?.heartbeatIntervalSeconds ?? 0) * 1000,
      startedMs,
      clock,
      outputDone.signal,
    );

    const batching = job.executionConfig?.batching;
    const playback = batching?.playbackIntervalMillis ?? 0;
    const pumping = pumpOutput({
      stdout: proc.stdout,
      stderr: proc.stderr,
      batcher: new EventBatcher({
        maxItems: positive(batching?.maxBatchSize, 50),
        maxBytes: positive(Number(batching?.maxBatchBytes ?? 0n), 256 * 1024),
        flushIntervalMs: positive(batching?.flushIntervalSeconds, 2) * 1000,
        idleFlushMs: job.executionConfig?.outputFlushIntervalMillis ?? 0,
        maxChunkBytes: MAX_CHUNK_BYTES,
      }),
      send: (batch) => publish(outputBatchEvent(sequencer, batch, playback)),
      clock,
      exited: proc.exit,
      drainAfterExitMs: 2_000,
    });
    const exit = await proc.exit;
    timeoutTimer.abort();
    stop.removeEventListener("abort", onStop);
    await pumping.catch((error) => log.warn({ err: error }, "output lost"));
    outputDone.abort();
    await heartbeats;
    const endedMs = clock.now();

    if (stopReason === "lease_lost") {
      publisher.stop(leaseLost.signal.reason);
      log.warn({ err: leaseLost.signal.reason }, "lease lost; the job was stopped");
      return { kind: "lease_lost", reason: leaseLost.signal.reason };
    }
    await publish(
      processEndEvent(sequencer, proc.pid, exit.exitCode, endedMs - startedMs, endedMs),
    );
    if (stopReason === "shutdown") {
      await publish(processErrorEvent(
        sequencer,
        "the worker shut down before the command finished; the job goes back to the queue",
        clock.now(),
      ));
      await publisher.drain();
      await api.extendLease(taskToken, job.queue, 0);
      log.info("job handed back");
      return { kind: "handed_back" };
    }
    const timedOut = stopReason === "timeout";
    const exitCode = timedOut ? TIMEOUT_EXIT_CODE : exit.exitCode;
    log.info({ exitCode, durationMs: endedMs - startedMs }, "job finished");
    return await complete({
      success: exitCode === 0,
      exitCode,
      errorMessage: timedOut
        ? `timed out after ${params?.timeoutSeconds} s`
        : exitCode === 0
        ? ""
        : exit.signal !== null
        ? `killed by ${exit.signal}`
        : `exited with code ${exitCode}`,
      startedAt: timestampFromMs(startedMs),
      completedAt: timestampFromMs(endedMs),
    });
  } catch (error) {
    if (leaseLost.signal.aborted) {
      return { kind: "lease_lost", reason: leaseLost.signal.reason };
    }
    throw error;
  } finally {
    finished.abort();
    publisher.stop(new Error("execution ended"));
    await keeping;
  }

  async function failToStart(error: ProcessStartError): Promise<JobOutcome> {
    log.info({ reason: error.message }, "job could not start");
    await publish(processErrorEvent(sequencer, error.message, clock.now()));
    const now = timestampFromMs(clock.now());
    return await complete({
      success: false,
      exitCode: error.exitCode,
      errorMessage: error.message,
      startedAt: now,
      completedAt: now,
    });
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
  return env;
}

/** SIGTERM, then SIGKILL if the process outlives the grace period. */
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
    await send(clock.now() - startedMs).catch(() => {});
  }
}

/** Retries `call` while it fails in a way that may pass, until `signal` aborts. */
async function retrying(call: () => Promise<void>, clock: Clock, signal: AbortSignal) {
  for (let failures = 0;; failures++) {
    try {
      return await call();
    } catch (error) {
      if (!isRetryable(error) || signal.aborted) throw error;
      await clock.sleep(backoffDelayMs(failures), signal);
    }
  }
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && value > 0 ? value : fallback;
}
