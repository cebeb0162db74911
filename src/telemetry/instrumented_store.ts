/**
 * A JobStore that records a child span per store call and the job metrics
 * of the wire contract, around any backend. The server wraps its store in
 * it, so every backend is measured the same way in one place.
 *
 * @module
 */
import type { Job, JobEvent, JobResult } from "../../gen/job/v1/job_pb.ts";
import { JobState } from "../../gen/job/v1/job_pb.ts";
import type {
  BatchOutcome,
  CompletionInput,
  DequeueOptions,
  EnqueueInput,
  EnqueueResult,
  JobPage,
  JobStore,
  LeasedJob,
  LeaseUpdate,
  ListJobsQuery,
  StreamEventsOptions,
} from "../store/job_store.ts";
import { count, observe, record } from "./metrics.ts";
import { inLeafSpan } from "./tracing.ts";

/** Most queues whose depth one server reports (queue names are chosen by clients). */
const MAX_DEPTH_QUEUES = 64;

/** `store`, traced and measured. */
export function instrumentStore(store: JobStore): JobStore & { stopObserving(): void } {
  return new InstrumentedStore(store);
}

/** The wrapper {@link instrumentStore} makes: each call in a span, with the job metrics. */
class InstrumentedStore implements JobStore {
  readonly capabilities: JobStore["capabilities"];
  readonly schedules: JobStore["schedules"];
  /** Stops reporting queue depths (close does it too). */
  readonly stopObserving: () => void;
  readonly #store: JobStore;
  /** The queues whose depth is reported: those seen in calls, up to MAX_DEPTH_QUEUES. */
  readonly #queues = new Set<string>();

  constructor(store: JobStore) {
    this.#store = store;
    this.capabilities = store.capabilities;
    this.schedules = store.schedules;
    this.stopObserving = observeQueueDepths(store, this.#queues);
  }

  #seen(queue: string): void {
    if (this.#queues.size < MAX_DEPTH_QUEUES) this.#queues.add(queue);
  }

  #span<T>(method: string, attributes: Record<string, string>, work: () => Promise<T>): Promise<T> {
    return inLeafSpan(
      `store.${method}`,
      { "airunner.store.operation": method, ...attributes },
      work,
    );
  }

  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    this.#seen(input.queue);
    const result = await this.#span(
      "enqueue",
      { "airunner.queue": input.queue },
      () => this.#store.enqueue(input),
    );
    if (result.created) count("airunner.jobs.enqueued.total", 1, { queue: input.queue });
    return result;
  }

  async enqueueBatch(inputs: readonly EnqueueInput[]): Promise<BatchOutcome<EnqueueResult>[]> {
    for (const input of inputs) this.#seen(input.queue);
    const outcomes = await this.#span(
      "enqueue_batch",
      { "airunner.batch.size": String(inputs.length) },
      () => this.#store.enqueueBatch(inputs),
    );
    outcomes.forEach((outcome, i) => {
      if (outcome.ok && outcome.value.created) {
        count("airunner.jobs.enqueued.total", 1, { queue: inputs[i]!.queue });
      }
    });
    return outcomes;
  }

  async dequeue(queue: string, options: DequeueOptions): Promise<LeasedJob[]> {
    this.#seen(queue);
    const started = performance.now();
    const leased = await this.#span(
      "dequeue",
      { "airunner.queue": queue },
      () => this.#store.dequeue(queue, options),
    );
    record("airunner.dequeue.wait.duration", performance.now() - started, {
      queue,
      result: leased.length > 0 ? "job" : "empty",
    });
    if (leased.length > 0) count("airunner.jobs.dequeued.total", leased.length, { queue });
    return leased;
  }

  async updateLease(
    taskToken: string,
    queue: string,
    visibilityTimeoutMs: number,
  ): Promise<LeaseUpdate> {
    const update = await this.#span(
      "update_lease",
      { "airunner.queue": queue },
      () => this.#store.updateLease(taskToken, queue, visibilityTimeoutMs),
    );
    count("airunner.jobs.visibility_updates.total", 1, {
      queue,
      kind: visibilityTimeoutMs > 0 ? "extend" : "hand_back",
    });
    return update;
  }

  async complete(taskToken: string, result: JobResult): Promise<boolean> {
    const recorded = await this.#span(
      "complete",
      { "airunner.job_id": result.jobId },
      () => this.#store.complete(taskToken, result),
    );
    // A resend changed nothing and was counted when it was first recorded.
    if (recorded) {
      count("airunner.jobs.completed.total", 1, {
        outcome: result.success ? "succeeded" : "failed",
      });
    }
    return recorded;
  }

  async completeBatch(items: readonly CompletionInput[]): Promise<BatchOutcome<boolean>[]> {
    const outcomes = await this.#span(
      "complete_batch",
      { "airunner.batch.size": String(items.length) },
      () => this.#store.completeBatch(items),
    );
    outcomes.forEach((outcome, i) => {
      if (!outcome.ok || !outcome.value) return;
      count("airunner.jobs.completed.total", 1, {
        outcome: items[i]!.result.success ? "succeeded" : "failed",
      });
    });
    return outcomes;
  }

  cancel(jobId: string, reason: string): Promise<Job> {
    return this.#span(
      "cancel",
      { "airunner.job_id": jobId },
      () => this.#store.cancel(jobId, reason),
    );
  }

  redrive(jobId: string): Promise<Job> {
    return this.#span(
      "redrive",
      { "airunner.job_id": jobId },
      () => this.#store.redrive(jobId),
    );
  }

  async publishEvents(taskToken: string, events: readonly JobEvent[]): Promise<number> {
    const started = performance.now();
    count("airunner.events.publish.total");
    try {
      const stored = await this.#span(
        "publish_events",
        {},
        () => this.#store.publishEvents(taskToken, events),
      );
      count("airunner.events.persisted.total", stored);
      return stored;
    } catch (error) {
      count("airunner.events.publish.errors.total");
      throw error;
    } finally {
      record("airunner.events.publish.duration", performance.now() - started);
    }
  }

  streamEvents(jobId: string, options: StreamEventsOptions): AsyncIterable<JobEvent> {
    return this.#store.streamEvents(jobId, options);
  }

  getJob(jobId: string): Promise<Job> {
    return this.#span("get_job", { "airunner.job_id": jobId }, () => this.#store.getJob(jobId));
  }

  listJobs(query: ListJobsQuery): Promise<JobPage> {
    return this.#span(
      "list_jobs",
      query.queue === undefined ? {} : { "airunner.queue": query.queue },
      () => this.#store.listJobs(query),
    );
  }

  close(): Promise<void> {
    this.stopObserving();
    return this.#store.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Reports the depth of each of `queues` (as it is at each collection); returns how to stop. */
function observeQueueDepths(store: JobStore, queues: ReadonlySet<string>): () => void {
  return observe("airunner.queue.depth", async (result) => {
    for (const queue of queues) {
      try {
        const page = await store.listJobs({
          queue,
          state: JobState.SCHEDULED,
          page: 1,
          pageSize: 1,
        });
        result.observe(page.jobs.length === 0 ? 0 : page.lastPage, { queue });
      } catch {
        // A store that is closing or failing reports nothing this round.
      }
    }
  });
}
