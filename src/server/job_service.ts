/**
 * JobService: the queue RPCs, translated to JobStore calls.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type DequeueJobResponse,
  DequeueJobResponseSchema,
  type EnqueueJobsResult,
  EnqueueJobsResultSchema,
  type ExecutionConfig,
  type JobService,
  type RetryPolicy,
} from "../../gen/job/v1/job_pb.ts";
import type { EnqueueInput } from "../protocol/job_requests.ts";
import { redriveJobs, type ReplayRights, rerunJob } from "./redrive.ts";
import { CALLER } from "./authorization.ts";
import type { BatchOutcome, EnqueueResult, JobStore } from "../store/job_store.ts";
import type { Logger } from "../logger.ts";
import { operationError } from "./error_mapping.ts";
import { withDefaultRetry } from "./job_defaults.ts";
import { redactJobForReaders } from "./job_redaction.ts";
import { handBackLeasedJobs } from "./hand_back.ts";
import { serveWorkerSession } from "./worker_session.ts";
import {
  validateCancelRequest,
  validateCompleteRequest,
  validateDequeueRequest,
  validateEnqueueJobsRequest,
  validateEnqueueRequest,
  validateJobId,
  validateListRequest,
  validateRedriveRequest,
  validateRerunRequest,
  validateUpdateRequest,
} from "../protocol/request_validation.ts";

/** What JobService needs. */
export interface JobServiceDeps {
  readonly store: JobStore;
  readonly logger: Logger;
  /** Given to every new job. */
  readonly executionConfig: ExecutionConfig;
  /**
   * Longest a DequeueJob without a client deadline waits for work before it
   * ends without a job.
   */
  readonly maxDequeueWaitMs: number;
  /** How often an idle worker session sends an empty message. */
  readonly sessionHeartbeatMs: number;
  /** The retry policy of a job enqueued without one (`--default-retries`); none when absent. */
  readonly defaultRetry?: RetryPolicy;
}

/** One item's answer of EnqueueJobs: its job, or the error that item alone met. */
function enqueueResult(
  outcome: BatchOutcome<EnqueueResult>,
  input: Pick<EnqueueInput, "requestId">,
  logger: Logger,
): EnqueueJobsResult {
  const requestId = input.requestId;
  if (!outcome.ok) {
    return create(EnqueueJobsResultSchema, {
      requestId,
      outcome: { case: "error", value: operationError(outcome.error, logger) },
    });
  }
  const { job, created } = outcome.value;
  return create(EnqueueJobsResultSchema, {
    requestId,
    created,
    outcome: {
      case: "job",
      value: { jobId: job.jobId, createdAt: job.createdAt, state: job.state },
    },
  });
}

/** Builds the JobService implementation. */
export function createJobService(deps: JobServiceDeps): ServiceImpl<typeof JobService> {
  const { store, logger } = deps;
  return {
    async enqueueJob(req) {
      const input = withDefaultRetry(validateEnqueueRequest(req), deps.defaultRetry);
      const { job, created } = await store.enqueue({
        ...input,
        executionConfig: deps.executionConfig,
      });
      logger.debug({ jobId: job.jobId, queue: input.queue, created }, "job enqueued");
      return { jobId: job.jobId, createdAt: job.createdAt, state: job.state };
    },

    async enqueueJobs(req) {
      const inputs = validateEnqueueJobsRequest(req).map((input) => ({
        ...withDefaultRetry(input, deps.defaultRetry),
        executionConfig: deps.executionConfig,
      }));
      const outcomes = await store.enqueueBatch(inputs);
      logger.debug({ jobs: inputs.length }, "jobs enqueued in a batch");
      return { results: outcomes.map((outcome, i) => enqueueResult(outcome, inputs[i]!, logger)) };
    },

    workerSession(requests, ctx) {
      return serveWorkerSession(requests, ctx, {
        store,
        logger,
        heartbeatMs: deps.sessionHeartbeatMs,
      });
    },

    async *dequeueJob(req, ctx: HandlerContext): AsyncGenerator<DequeueJobResponse> {
      const { queue, maxJobs, visibilityTimeoutMs, workerName } = validateDequeueRequest(req);
      // The client's deadline bounds the wait; without one, the server's
      // own cap does, so idle calls through proxies are recycled. (The cap
      // is the store's wait timeout, cancelled when work comes: a timer per
      // call left running for its full length would hold every call's
      // memory that long.)
      const leased = await store.dequeue(queue, {
        maxJobs,
        visibilityTimeoutMs,
        workerName,
        signal: ctx.signal,
        ...(ctx.timeoutMs() === undefined ? { maxWaitMs: deps.maxDequeueWaitMs } : {}),
      });
      let sent = 0;
      try {
        for (const { job, taskToken } of leased) {
          if (ctx.signal.aborted) break;
          yield create(DequeueJobResponseSchema, { job, taskToken });
          sent++;
        }
      } finally {
        // Jobs the client never received go straight back to the queue
        // instead of waiting out their visibility timeout.
        await handBackLeasedJobs(
          store,
          logger,
          leased.slice(sent),
          "could not hand back an undelivered job",
        );
      }
    },

    async updateJob(req) {
      const { queue, taskToken, visibilityTimeoutMs } = validateUpdateRequest(req);
      const { cancelled } = await store.updateLease(taskToken, queue, visibilityTimeoutMs);
      return { cancelled };
    },

    async completeJob(req) {
      const { taskToken, result } = validateCompleteRequest(req);
      await store.complete(taskToken, result);
      logger.debug({ jobId: result.jobId, success: result.success }, "job completed");
      return {};
    },

    async listJobs(req) {
      const page = await store.listJobs(validateListRequest(req));
      return { jobs: page.jobs.map(redactJobForReaders), lastPage: page.lastPage };
    },

    async getJob(req) {
      return { job: redactJobForReaders(await store.getJob(validateJobId(req.jobId))) };
    },

    async cancelJob(req) {
      const { jobId, reason } = validateCancelRequest(req);
      const job = await store.cancel(jobId, reason);
      logger.info({ jobId, state: job.state }, "job cancelled");
      return { job: redactJobForReaders(job) };
    },

    async redriveJobs(req, ctx) {
      const filter = validateRedriveRequest(req);
      const jobs = await redriveJobs(store, filter, replayRightsOf(ctx), ctx.signal);
      if (!filter.dryRun) logger.info({ jobs: jobs.length }, "dead letters redriven");
      return { jobs: jobs.map(redactJobForReaders) };
    },

    async rerunJob(req, ctx) {
      const job = await rerunJob(
        store,
        validateRerunRequest(req),
        deps.executionConfig,
        replayRightsOf(ctx),
      );
      logger.info({ jobId: job.jobId, rerunOf: job.jobParams?.rerunOf }, "job rerun");
      return { job: redactJobForReaders(job) };
    },
  };
}

/** A caller with admin scope, or any caller of a server without authentication, may replay secrets. */
function replayRightsOf(ctx: HandlerContext): ReplayRights {
  const caller = ctx.values.get(CALLER);
  return { maySecrets: caller === undefined || caller.scopes.includes("admin") };
}
