/**
 * Validation of RPC requests (pure). Each function checks one request, turns
 * it into the store's terms, applies the wire contract's defaults, and throws
 * {@link InvalidArgumentError} naming the field and the limit for anything
 * out of bounds, before anything is written.
 *
 * @module
 */
import type {
  CancelJobRequest,
  CompleteJobRequest,
  DequeueJobRequest,
  EnqueueJobRequest,
  EnqueueJobsRequest,
  JobParams,
  JobResult,
  ListJobsRequest,
  RedriveJobsRequest,
  RerunJobRequest,
  StreamJobEventsRequest,
  UpdateJobRequest,
} from "../../gen/job/v1/job_pb.ts";
import { EventType, JobState, ProcessType } from "../../gen/job/v1/job_lite.ts";
import type { EnqueueInput, ListJobsQuery } from "./job_requests.ts";
import { isUuid } from "./job_id.ts";
import { millis } from "./timestamp_ms.ts";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { checkRange, InvalidArgumentError } from "./invalid_argument.ts";
import { validateRetryPolicy, validateStartTime } from "./timing_validation.ts";
import {
  branchNameProblem,
  isHexObjectId,
  MAX_OBJECT_ID_HEX,
  MIN_OBJECT_ID_HEX,
} from "./git_refs.ts";
import * as limits from "./limits.ts";

export { InvalidArgumentError, validateRetryPolicy };

import {
  FIRING_METADATA_KEY,
  FIRING_REQUEST_ID_PREFIX,
  SCHEDULE_METADATA_KEY,
} from "./schedule_keys.ts";

const QUEUE_NAME = /^[A-Za-z0-9_-]+$/;

/** Checks a queue name. */
export function validateQueueName(queue: string, field = "queue"): string {
  if (queue === "") throw new InvalidArgumentError(field, "is required");
  if (queue.length > limits.MAX_QUEUE_NAME_LENGTH) {
    throw new InvalidArgumentError(
      field,
      `is ${queue.length} characters, more than the limit of ${limits.MAX_QUEUE_NAME_LENGTH}`,
    );
  }
  if (!QUEUE_NAME.test(queue)) {
    throw new InvalidArgumentError(field, "may contain only letters, digits, '-' and '_'");
  }
  return queue;
}

/** Checks a job id. */
export function validateJobId(jobId: string, field = "job_id"): string {
  if (jobId === "") throw new InvalidArgumentError(field, "is required");
  if (!isUuid(jobId)) throw new InvalidArgumentError(field, "is not a UUID");
  return jobId.toLowerCase();
}

/** Checks a task token's presence and size (its signature is the store's to check). */
export function validateTaskToken(token: string, field = "task_token"): string {
  if (token === "") throw new InvalidArgumentError(field, "is required");
  if (token.length > 4096) {
    throw new InvalidArgumentError(field, "is longer than the limit of 4096 characters");
  }
  return token;
}

/** Checks an EnqueueJob request's request_id. */
export function validateRequestId(requestId: string): string {
  checkLength("request_id", requestId, limits.MAX_REQUEST_ID_LENGTH);
  return requestId;
}

/** Checks a job's parameters; `nowMs` is what a run_at is held against. */
export function validateJobParams(
  params: JobParams | undefined,
  nowMs: number = Date.now(),
): JobParams {
  const field = "job_params";
  if (params === undefined) throw new InvalidArgumentError(field, "is required");
  if (params.command.trim() === "") {
    throw new InvalidArgumentError(`${field}.command`, "is required");
  }
  checkLength(`${field}.command`, params.command, limits.MAX_COMMAND_LENGTH);
  checkNoNul(`${field}.command`, params.command);
  if (params.args.length > limits.MAX_ARGS) {
    throw new InvalidArgumentError(
      `${field}.args`,
      `has ${params.args.length} entries, more than the limit of ${limits.MAX_ARGS}`,
    );
  }
  params.args.forEach((arg, i) => {
    checkLength(`${field}.args[${i}]`, arg, limits.MAX_ARG_LENGTH);
    checkNoNul(`${field}.args[${i}]`, arg);
  });
  checkMap(`${field}.environment`, params.environment);
  for (const [key, value] of Object.entries(params.environment)) {
    checkEnvName(`${field}.environment`, key);
    checkNoNul(`${field}.environment[${key}]`, value);
  }
  validateSecretEnvironment(params, field);
  checkMap(`${field}.metadata`, params.metadata);
  for (const key of ["repository", "commit", "branch", "owner", "workingDirectory"] as const) {
    checkLength(`${field}.${snake(key)}`, params[key], limits.MAX_SHORT_STRING_LENGTH);
  }
  validateCheckout(params, field);
  if (!(params.processType in ProcessType)) {
    throw new InvalidArgumentError(
      `${field}.process_type`,
      `has unknown value ${params.processType}`,
    );
  }
  checkRange(`${field}.timeout_seconds`, params.timeoutSeconds, 0, limits.MAX_TIMEOUT_SECONDS);
  if (params.retry !== undefined) validateRetryPolicy(params.retry, `${field}.retry`);
  validateStartTime(params, field, nowMs);
  checkRange(`${field}.priority`, params.priority, limits.MIN_PRIORITY, limits.MAX_PRIORITY);
  validateDependencies(params, field);
  if (params.rerunOf !== "") {
    // Only RerunJob links a job to the one it reruns; a link a client set could point anywhere.
    throw new InvalidArgumentError(`${field}.rerun_of`, "is set by RerunJob only; leave it empty");
  }
  return params;
}

/**
 * Checks a job's dependencies (`after`, `after_any`): job ids, each named
 * once, at most MAX_DEPENDENCIES in all; lower-cases them as job ids are
 * stored. Whether they exist is the store's to check, at enqueue.
 */
function validateDependencies(params: JobParams, field: string): void {
  const total = params.after.length + params.afterAny.length;
  if (total > limits.MAX_DEPENDENCIES) {
    throw new InvalidArgumentError(
      `${field}.after`,
      `names ${total} dependencies (after and after_any), more than the limit of ${limits.MAX_DEPENDENCIES}`,
    );
  }
  const seen = new Set<string>();
  for (const key of ["after", "afterAny"] as const) {
    params[key] = params[key].map((id, i) => {
      const jobId = validateJobId(id, `${field}.${snake(key)}[${i}]`);
      if (seen.has(jobId)) {
        throw new InvalidArgumentError(`${field}.${snake(key)}[${i}]`, `names ${jobId} twice`);
      }
      seen.add(jobId);
      return jobId;
    });
  }
}

/**
 * Checks what a worker hands to git: the repository, the branch and the
 * commit. None may begin with `-` (git would read it as an option: a commit
 * of `--upload-pack=CMD` ran CMD on the worker); a branch follows git's
 * branch-name rules; a commit is a hex object id (a tag or other ref name
 * goes in `branch`, which `git clone --branch` resolves as a tag too).
 */
export function validateCheckout(
  params: Pick<JobParams, "repository" | "branch" | "commit">,
  field = "job_params",
): void {
  validateRepository(params.repository, `${field}.repository`);
  validateBranch(params.branch, `${field}.branch`);
  validateCommit(params.commit, `${field}.commit`);
}

/** Checks a repository URL or path (empty: no repository). */
export function validateRepository(repository: string, field = "repository"): string {
  if (repository.startsWith("-")) {
    throw new InvalidArgumentError(field, "must not begin with '-'");
  }
  // deno-lint-ignore no-control-regex -- control characters are what this rule refuses
  if (/[\x00-\x1f\x7f]/.test(repository)) {
    throw new InvalidArgumentError(field, "must not contain control characters");
  }
  return repository;
}

/** Checks a branch name (empty: the repository's default branch). */
export function validateBranch(branch: string, field = "branch"): string {
  if (branch === "") return branch;
  const problem = branchNameProblem(branch);
  if (problem !== undefined) {
    throw new InvalidArgumentError(field, `is not a valid git branch name: ${problem}`);
  }
  return branch;
}

/** Checks a commit (empty: none; the branch decides). */
export function validateCommit(commit: string, field = "commit"): string {
  if (commit === "" || isHexObjectId(commit)) return commit;
  throw new InvalidArgumentError(
    field,
    `must be a hex object id (${MIN_OBJECT_ID_HEX} to ${MAX_OBJECT_ID_HEX} hex digits)`,
  );
}

/**
 * Checks a job's secret environment: names as for `environment` (and not
 * also in it, so which value the process sees is never a question), values
 * of 1 byte or more, within the secret limits. Messages name the field and
 * the key, never a value.
 */
export function validateSecretEnvironment(params: JobParams, paramsField = "job_params"): void {
  const field = `${paramsField}.secret_environment`;
  const entries = Object.entries(params.secretEnvironment);
  if (entries.length > limits.MAX_SECRET_ENTRIES) {
    throw new InvalidArgumentError(
      field,
      `has ${entries.length} entries, more than the limit of ${limits.MAX_SECRET_ENTRIES}`,
    );
  }
  const encoder = new TextEncoder();
  let totalBytes = 0;
  for (const [key, value] of entries) {
    if (key === "") throw new InvalidArgumentError(field, "has an empty key");
    checkLength(`${field} key`, key, limits.MAX_MAP_KEY_LENGTH);
    checkEnvName(field, key);
    if (Object.hasOwn(params.environment, key)) {
      throw new InvalidArgumentError(
        field,
        `key "${key}" is also in ${paramsField}.environment; give it in one of the two`,
      );
    }
    const bytes = encoder.encode(value).byteLength;
    if (bytes === 0) {
      throw new InvalidArgumentError(
        `${field}[${key}]`,
        "is empty; a secret needs at least 1 byte",
      );
    }
    if (bytes > limits.MAX_SECRET_VALUE_BYTES) {
      throw new InvalidArgumentError(
        `${field}[${key}]`,
        `is ${bytes} bytes, more than the limit of ${limits.MAX_SECRET_VALUE_BYTES}`,
      );
    }
    checkNoNul(`${field}[${key}]`, value);
    totalBytes += bytes;
  }
  if (totalBytes > limits.MAX_SECRET_TOTAL_BYTES) {
    throw new InvalidArgumentError(
      field,
      `values are ${totalBytes} bytes together, more than the limit of ${limits.MAX_SECRET_TOTAL_BYTES}`,
    );
  }
}

/** An EnqueueJob request in the store's terms (its execution config is the server's). */
export function validateEnqueueRequest(
  req: EnqueueJobRequest,
): Omit<EnqueueInput, "executionConfig"> {
  const requestId = validateRequestId(req.requestId);
  if (requestId.startsWith(FIRING_REQUEST_ID_PREFIX)) {
    throw new InvalidArgumentError(
      "request_id",
      `begins with "${FIRING_REQUEST_ID_PREFIX}", which is kept for the jobs of schedules' firings`,
    );
  }
  const queue = validateQueueName(req.queue);
  const params = validateJobParams(req.jobParams);
  for (const key of [SCHEDULE_METADATA_KEY, FIRING_METADATA_KEY]) {
    if (key in params.metadata) {
      throw new InvalidArgumentError(
        `job_params.metadata[${key}]`,
        "is set by the scheduler on a schedule's jobs only; use another key",
      );
    }
  }
  return { requestId, queue, params };
}

/**
 * Every job of an EnqueueJobs request, checked before any is stored; an
 * error names the item (`jobs[3].job_params.command: is required`).
 */
export function validateEnqueueJobsRequest(
  req: EnqueueJobsRequest,
): Omit<EnqueueInput, "executionConfig">[] {
  if (req.jobs.length > limits.MAX_ENQUEUE_BATCH) {
    throw new InvalidArgumentError(
      "jobs",
      `has ${req.jobs.length} jobs, more than the limit of ${limits.MAX_ENQUEUE_BATCH}`,
    );
  }
  return req.jobs.map((job, i) => withinItem(`jobs[${i}]`, () => validateEnqueueRequest(job)));
}

/** Runs `check`, naming `prefix` in front of the field of any error it throws. */
export function withinItem<T>(prefix: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof InvalidArgumentError) {
      throw new InvalidArgumentError(`${prefix}.${error.field}`, error.problem);
    }
    throw error;
  }
}

/** The dequeue settings of a DequeueJob request, with the contract's defaults. */
export function validateDequeueRequest(
  req: DequeueJobRequest,
): { queue: string; maxJobs: number; visibilityTimeoutMs: number; workerName: string } {
  const queue = validateQueueName(req.queue);
  // Asking for more than one call can lease is not an error: the client
  // gets what one call can give, as from an SQS receive.
  const maxJobs = Math.min(req.maxJobs <= 0 ? 1 : req.maxJobs, limits.MAX_DEQUEUE_JOBS);
  const seconds = req.visibilityTimeoutSeconds <= 0
    ? limits.DEFAULT_VISIBILITY_TIMEOUT_SECONDS
    : req.visibilityTimeoutSeconds;
  checkRange("visibility_timeout_seconds", seconds, 1, limits.MAX_VISIBILITY_TIMEOUT_SECONDS);
  return {
    queue,
    maxJobs,
    visibilityTimeoutMs: seconds * 1000,
    workerName: validateWorkerName(req.workerName),
  };
}

/** Checks the name a worker gives for the attempts it runs. */
export function validateWorkerName(name: string, field = "worker_name"): string {
  checkLength(field, name, limits.MAX_WORKER_NAME_LENGTH);
  checkNoNul(field, name);
  return name;
}

/** Which dead letters a RedriveJobs request selects. */
export interface RedriveFilter {
  /** Only this queue; undefined: every queue. */
  readonly queue: string | undefined;
  /** Only jobs that finished at or after this Unix ms (0: any time). */
  readonly finishedAfterMs: number;
  /** Only jobs whose metadata holds every pair. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Only jobs whose last attempt exited with one of these codes; empty: any. */
  readonly exitCodes: readonly number[];
  readonly dryRun: boolean;
}

/** Checks a RedriveJobs request. */
export function validateRedriveRequest(req: RedriveJobsRequest): RedriveFilter {
  checkMap("metadata", req.metadata);
  if (req.exitCodes.length > limits.MAX_RETRY_EXIT_CODE_RANGES) {
    throw new InvalidArgumentError(
      "exit_codes",
      `has ${req.exitCodes.length} codes, more than the limit of ${limits.MAX_RETRY_EXIT_CODE_RANGES}`,
    );
  }
  req.exitCodes.forEach((code, i) => checkRange(`exit_codes[${i}]`, code, 0, 255));
  const after = req.finishedAfter;
  return {
    queue: req.queue === "" ? undefined : validateQueueName(req.queue),
    finishedAfterMs: after === undefined
      ? 0
      : Number(after.seconds) * 1000 + Math.floor(after.nanos / 1e6),
    metadata: req.metadata,
    exitCodes: req.exitCodes,
    dryRun: req.dryRun,
  };
}

/** Checks a RerunJob request. */
export function validateRerunRequest(req: RerunJobRequest): { jobId: string; requestId: string } {
  return { jobId: validateJobId(req.jobId), requestId: validateRequestId(req.requestId) };
}

/** The settings of an UpdateJob request; a visibility of 0 hands the job back. */
export function validateUpdateRequest(
  req: Pick<UpdateJobRequest, "queue" | "taskToken" | "visibilityTimeoutSeconds">,
): { queue: string; taskToken: string; visibilityTimeoutMs: number } {
  const queue = validateQueueName(req.queue);
  const taskToken = validateTaskToken(req.taskToken);
  checkRange(
    "visibility_timeout_seconds",
    req.visibilityTimeoutSeconds,
    0,
    limits.MAX_VISIBILITY_TIMEOUT_SECONDS,
  );
  return { queue, taskToken, visibilityTimeoutMs: req.visibilityTimeoutSeconds * 1000 };
}

/** The token and result of a CompleteJob request (the job id in canonical lower case). */
export function validateCompleteRequest(
  req: Pick<CompleteJobRequest, "taskToken" | "jobResult">,
): { taskToken: string; result: JobResult } {
  const taskToken = validateTaskToken(req.taskToken);
  const result = req.jobResult;
  if (result === undefined) throw new InvalidArgumentError("job_result", "is required");
  checkLength("job_result.error_message", result.errorMessage, limits.MAX_ERROR_MESSAGE_LENGTH);
  return {
    taskToken,
    result: { ...result, jobId: validateJobId(result.jobId, "job_result.job_id") },
  };
}

/** The store query of a ListJobs request, with the contract's defaults. */
export function validateListRequest(req: ListJobsRequest): ListJobsQuery {
  const pageSize = req.pageSize <= 0 ? limits.DEFAULT_PAGE_SIZE : req.pageSize;
  checkRange("page_size", pageSize, 1, limits.MAX_PAGE_SIZE);
  if (!(req.state in JobState)) {
    throw new InvalidArgumentError("state", `has unknown value ${req.state}`);
  }
  const filters = Object.keys(req.metadata);
  if (filters.length > limits.MAX_LIST_METADATA_FILTERS) {
    throw new InvalidArgumentError(
      "metadata",
      `has ${filters.length} pairs, more than the limit of ${limits.MAX_LIST_METADATA_FILTERS}`,
    );
  }
  checkMap("metadata", req.metadata);
  checkLength("owner", req.owner, limits.MAX_SHORT_STRING_LENGTH);
  const after = listingBound("created_after", req.createdAfter);
  const before = listingBound("created_before", req.createdBefore);
  if (after !== undefined && before !== undefined && after > before) {
    throw new InvalidArgumentError(
      "created_after",
      `is ${new Date(after).toISOString()}, after created_before ${new Date(before).toISOString()}`,
    );
  }
  for (const key of filters) {
    checkLength(`metadata[${key}]`, req.metadata[key]!, limits.MAX_FILTERABLE_METADATA_LENGTH);
  }
  return {
    page: req.page <= 0 ? 1 : req.page,
    pageSize,
    ...(req.queue === "" ? {} : { queue: validateQueueName(req.queue) }),
    ...(req.state === JobState.UNSPECIFIED ? {} : { state: req.state }),
    ...(filters.length === 0 ? {} : { metadata: { ...req.metadata } }),
    ...(req.owner === "" ? {} : { owner: req.owner }),
    ...(after === undefined ? {} : { createdAfterMs: after }),
    ...(before === undefined ? {} : { createdBeforeMs: before }),
  };
}

/** Years 1..9999, what RFC 3339 (and so a Date's ISO string) can say. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

/** A ListJobs time bound as Unix ms: a valid timestamp, or undefined when unset. */
function listingBound(field: string, ts: Timestamp | undefined): number | undefined {
  if (ts === undefined) return undefined;
  if (ts.nanos < 0 || ts.nanos > 999_999_999) {
    throw new InvalidArgumentError(field, `has nanos ${ts.nanos}, outside 0..999999999`);
  }
  const seconds = BigInt(ts.seconds);
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS) {
    throw new InvalidArgumentError(field, `is ${seconds} seconds, outside the years 1..9999`);
  }
  return millis(ts);
}

/** The replay bounds of a StreamJobEvents request. */
export function validateStreamRequest(req: StreamJobEventsRequest): {
  jobId: string;
  fromSequence: bigint;
  fromTimestampMs: number;
  eventTypes: Set<EventType>;
} {
  const jobId = validateJobId(req.jobId);
  if (req.fromSequence < 0n) {
    throw new InvalidArgumentError("from_sequence", "must not be negative");
  }
  if (req.fromTimestamp < 0n) {
    throw new InvalidArgumentError("from_timestamp", "must not be negative");
  }
  if (req.fromTimestamp > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError("from_timestamp", "is beyond any representable time");
  }
  req.eventFilter.forEach((type, i) => {
    if (!(type in EventType)) {
      throw new InvalidArgumentError(`event_filter[${i}]`, `has unknown value ${type}`);
    }
  });
  return {
    jobId,
    fromSequence: req.fromSequence,
    fromTimestampMs: Number(req.fromTimestamp),
    eventTypes: new Set(req.eventFilter),
  };
}

/** The job and reason of a CancelJob request. */
export function validateCancelRequest(req: CancelJobRequest): { jobId: string; reason: string } {
  checkLength("reason", req.reason, limits.MAX_CANCEL_REASON_LENGTH);
  return { jobId: validateJobId(req.jobId), reason: req.reason };
}

/** Checks the size of one PublishJobEvents message. */
export function validatePublishMessage(taskToken: string, eventCount: number): void {
  validateTaskToken(taskToken);
  if (eventCount > limits.MAX_EVENTS_PER_PUBLISH) {
    throw new InvalidArgumentError(
      "events",
      `has ${eventCount} events, more than the limit of ${limits.MAX_EVENTS_PER_PUBLISH}`,
    );
  }
}

function checkLength(field: string, value: string, max: number): void {
  if (value.length > max) {
    throw new InvalidArgumentError(
      field,
      `is ${value.length} characters, more than the limit of ${max}`,
    );
  }
}

/** A process environment cannot hold these names; refuse them here rather than fail the job on the worker. */
function checkEnvName(field: string, key: string): void {
  if (key.includes("=")) throw new InvalidArgumentError(field, `key "${key}" contains '='`);
  checkNoNul(`${field} key`, key);
}

function checkNoNul(field: string, value: string): void {
  if (value.includes("\0")) throw new InvalidArgumentError(field, "contains a NUL character");
}

function checkMap(field: string, map: Record<string, string>): void {
  const keys = Object.keys(map);
  if (keys.length > limits.MAX_MAP_ENTRIES) {
    throw new InvalidArgumentError(
      field,
      `has ${keys.length} entries, more than the limit of ${limits.MAX_MAP_ENTRIES}`,
    );
  }
  for (const key of keys) {
    if (key === "") throw new InvalidArgumentError(field, "has an empty key");
    checkLength(`${field} key`, key, limits.MAX_MAP_KEY_LENGTH);
    checkLength(`${field}[${key}]`, map[key]!, limits.MAX_MAP_VALUE_LENGTH);
  }
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
