/**
 * The load agent's session roles (run by scripts/bench/agent.ts in a process
 * of its own):
 *
 * - {@link runSessionCycle}: a producer that enqueues no-op jobs with
 *   EnqueueJobs (batches of `batch`, `inFlight` calls at a time, never more
 *   than `backlog` jobs enqueued and not yet completed by this process), and
 *   `sessions` WorkerSession consumers, each running the worker's own claim
 *   loop (src/worker/claim_loop.ts) with `concurrency` jobs at a time and
 *   completing every job at once. Completions acknowledged inside the
 *   window are counted.
 * - {@link runSessionPickup}: pickup latency on the session path, on one
 *   clock: a session claim waits on an idle queue, one EnqueueJob is sent,
 *   and the time until claim() returns the job is a sample.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import {
  EnqueueJobsRequestSchema,
  type EnqueueJobsResponse,
  JobResultSchema,
} from "../../gen/job/v1/job_pb.ts";
import { systemClock } from "../../src/clock.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { createLogger } from "../../src/logger.ts";
import type { LeasedJob } from "../../src/store/job_store.ts";
import { runClaimLoop } from "../../src/worker/claim_loop.ts";
import {
  type ClosableWorkerApi,
  createSessionWorkerApi,
} from "../../src/worker/session_worker_api.ts";
import { createRpcWorkerApi } from "../../src/worker/worker_api.ts";
import { preciseNowMs } from "./stats.ts";

/** Lease length of the jobs the session consumers take (they finish at once). */
const VISIBILITY_TIMEOUT_SECONDS = 300;

/** Options of {@link runSessionCycle}. */
export interface SessionCycleOptions {
  readonly serverUrl: string;
  readonly queue: string;
  /** WorkerSession streams (each with its own HTTP/2 connection and claim loop). */
  readonly sessions: number;
  /** Jobs each session's claim loop holds at once (its credits). */
  readonly concurrency: number;
  /** Jobs per EnqueueJobs call. */
  readonly batch: number;
  /** EnqueueJobs calls in flight at once. */
  readonly inFlight: number;
  /** Most jobs this process has enqueued and not yet seen completed. */
  readonly backlog: number;
  /** Wall-clock (epoch ms) start of the counting window: load before it is warmup. */
  readonly windowStartMs: number;
  /** Wall-clock end of the counting window; the agent stops there. */
  readonly windowEndMs: number;
}

/** What {@link runSessionCycle} reports. */
export interface SessionCycleResult {
  /** Completions acknowledged inside the window. */
  readonly completedInWindow: number;
  readonly completed: number;
  readonly enqueued: number;
  readonly enqueueCalls: number;
  /** When the first completion was acknowledged: load was flowing from then on. */
  readonly firstCompletedAtMs: number;
  readonly startedAtMs: number;
  readonly endedAtMs: number;
}

/** Runs the session queue cycle until the window ends (see the module doc). */
export async function runSessionCycle(options: SessionCycleOptions): Promise<SessionCycleResult> {
  const { serverUrl, queue, windowStartMs, windowEndMs } = options;
  const startedAtMs = preciseNowMs();
  const clients = createAirunnerClients({ serverUrl });
  const logger = createLogger({ level: "warn" });
  const stop = new AbortController();
  const stopTimer = setTimeout(() => stop.abort(), Math.max(0, windowEndMs - Date.now()));

  let enqueued = 0;
  let enqueueCalls = 0;
  let completed = 0;
  let completedInWindow = 0;
  let firstCompletedAtMs = Number.NaN;
  const failures: unknown[] = [];
  // Producers wait here while the backlog is full; completions wake them.
  let wakeProducers: (() => void) | undefined;
  let roomFor: Promise<void> | undefined;
  const waitForRoom = () => {
    roomFor ??= new Promise<void>((resolve) => {
      wakeProducers = () => {
        roomFor = undefined;
        wakeProducers = undefined;
        resolve();
      };
    });
    return roomFor;
  };
  stop.signal.addEventListener("abort", () => wakeProducers?.(), { once: true });

  // One request, sent again and again: each call still encodes it.
  const request = create(EnqueueJobsRequestSchema, {
    jobs: Array.from({ length: options.batch }, () => ({
      queue,
      jobParams: { command: "true" },
    })),
  });
  const produce = async () => {
    while (!stop.signal.aborted) {
      if (enqueued - completed + options.batch > options.backlog) {
        await waitForRoom();
        continue;
      }
      enqueued += options.batch;
      enqueueCalls++;
      let response: EnqueueJobsResponse;
      try {
        response = await clients.jobs.enqueueJobs(request);
      } catch (error) {
        if (stop.signal.aborted) return;
        throw error;
      }
      const refused = response.results.find((r) => r.outcome.case !== "job");
      if (refused !== undefined || response.results.length !== options.batch) {
        throw new Error(`EnqueueJobs refused a job: ${JSON.stringify(refused?.outcome.value)}`);
      }
    }
  };

  const apis: ClosableWorkerApi[] = [];
  const consume = async (api: ClosableWorkerApi) => {
    await runClaimLoop<LeasedJob>({
      claim: (max, signal) =>
        api.claim(queue, {
          maxJobs: max,
          visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
          signal,
        }),
      handle: async ({ job, taskToken }) => {
        try {
          await api.complete(
            taskToken,
            {
              result: create(JobResultSchema, { jobId: job!.jobId, success: true }),
              lastEvents: [],
            },
          );
        } catch (error) {
          failures.push(error);
          return;
        }
        completed++;
        const now = Date.now();
        if (Number.isNaN(firstCompletedAtMs)) firstCompletedAtMs = preciseNowMs();
        if (now >= windowStartMs && now < windowEndMs) completedInWindow++;
        if (enqueued - completed + options.batch <= options.backlog) wakeProducers?.();
      },
      concurrency: options.concurrency,
      clock: systemClock,
      logger,
      signal: stop.signal,
    });
  };

  for (let i = 0; i < options.sessions; i++) {
    apis.push(createSessionWorkerApi({
      connection: { serverUrl },
      unary: createRpcWorkerApi(createAirunnerClients({ serverUrl, bufferRequestStreams: true })),
      mode: "session",
      clock: systemClock,
      logger,
    }));
  }
  try {
    await Promise.all([
      ...Array.from({ length: options.inFlight }, produce),
      ...apis.map(consume),
    ]);
  } finally {
    clearTimeout(stopTimer);
    stop.abort();
    await Promise.all(apis.map((api) => api.close()));
  }
  const endedAtMs = preciseNowMs();
  if (failures.length > 0) {
    throw new Error(`${failures.length} completions failed; the first: ${String(failures[0])}`);
  }
  return {
    completedInWindow,
    completed,
    enqueued,
    enqueueCalls,
    firstCompletedAtMs,
    startedAtMs,
    endedAtMs,
  };
}

/** Options of {@link runSessionPickup}. */
export interface SessionPickupOptions {
  readonly serverUrl: string;
  /** An idle queue, used by nobody else. */
  readonly queue: string;
  /** Samples reported. */
  readonly samples: number;
  /** Samples taken first and dropped (connections, JIT). */
  readonly warmup: number;
}

/**
 * Pickup samples in ms: EnqueueJob sent -> claim() returns the job, in this
 * process. Each job is completed before the next sample; the completion
 * carries the credit for the next job, as a worker's would.
 */
export async function runSessionPickup(
  options: SessionPickupOptions,
): Promise<{ samples: number[] }> {
  const { serverUrl, queue } = options;
  const clients = createAirunnerClients({ serverUrl });
  const api = createSessionWorkerApi({
    connection: { serverUrl },
    unary: createRpcWorkerApi(createAirunnerClients({ serverUrl, bufferRequestStreams: true })),
    mode: "session",
    clock: systemClock,
    logger: createLogger({ level: "warn" }),
  });
  const never = new AbortController();
  const samples: number[] = [];
  try {
    for (let i = 0; i < options.warmup + options.samples; i++) {
      const claiming = api.claim(queue, {
        maxJobs: 1,
        visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
        signal: never.signal,
      }).then((jobs) => ({ jobs, heldAt: performance.now() }));
      // Let the claim's credit reach the server (the first claim opens the stream).
      await new Promise((resolve) => setTimeout(resolve, i === 0 ? 200 : 2));
      const sentAt = performance.now();
      const enqueueing = clients.jobs.enqueueJob({ queue, jobParams: { command: "true" } });
      const [{ jobs, heldAt }, { jobId }] = await Promise.all([claiming, enqueueing]);
      const leased = jobs[0];
      if (jobs.length !== 1 || leased?.job?.jobId !== jobId) {
        throw new Error(`claim returned ${jobs.length} jobs, not the one enqueued (${jobId})`);
      }
      if (i >= options.warmup) samples.push(heldAt - sentAt);
      await api.complete(leased.taskToken, {
        result: create(JobResultSchema, { jobId, success: true }),
        lastEvents: [],
      });
    }
  } finally {
    await api.close();
  }
  return { samples };
}
