/**
 * Reading jobs back: one job by id, and pages of jobs (a Scan of the jobs
 * table, or a Query of its queue index), newest first, of a state and
 * with metadata pairs when asked. Each job read is settled first, so a
 * cancelled job whose worker is gone reads as CANCELLED.
 *
 * @module
 */
import {
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  type ScanCommandInput,
} from "@aws-sdk/client-dynamodb";
import { fromBinary } from "@bufbuild/protobuf";
import { type Job, JobParamsSchema } from "../../../gen/job/v1/job_pb.ts";
import { metadataMatches, ownerAndTimeMatch } from "../../protocol/job_requests.ts";
import type { JobPage, ListJobsQuery } from "../job_store.ts";
import { settled } from "./finish_job.ts";
import {
  effectiveState,
  isLiveJobItem,
  type Item,
  jobOf,
  type JobRecord,
  jobRecordOf,
  QUEUE_INDEX,
} from "./job_item.ts";
import type { AwsStoreContext } from "./store_context.ts";

export async function getJob(ctx: AwsStoreContext, jobId: string): Promise<Job> {
  const record = await settled(ctx, await ctx.record(jobId));
  return jobOf(record, ctx.clock.now());
}

export async function listJobs(ctx: AwsStoreContext, query: ListJobsQuery): Promise<JobPage> {
  const items = query.queue === undefined
    ? await scanAll(ctx, {
      TableName: ctx.jobsTable,
      FilterExpression: "attribute_exists(created_at)",
    })
    : await queryAll(ctx, {
      TableName: ctx.jobsTable,
      IndexName: QUEUE_INDEX,
      KeyConditionExpression: "#queue = :queue",
      ExpressionAttributeNames: { "#queue": "queue" },
      ExpressionAttributeValues: { ":queue": { S: query.queue } },
    });
  const now = ctx.clock.now();
  const records: JobRecord[] = [];
  for (const item of items) {
    // Schedules and idempotency claims share the table; they have no created_at.
    if (!isLiveJobItem(item, now) || !paramsMatch(item, query)) continue;
    const record = jobRecordOf(item);
    if (!ownerAndTimeMatch(ownerOf(item, query), record.createdAtMs, query)) continue;
    records.push(await settled(ctx, record));
  }
  const matching = records
    .filter((r) => query.state === undefined || effectiveState(r, now) === query.state)
    .sort((a, b) => b.createdAtMs - a.createdAtMs || (a.jobId < b.jobId ? 1 : -1));
  const start = (query.page - 1) * query.pageSize;
  return {
    jobs: matching.slice(start, start + query.pageSize).map((r) => jobOf(r, now)),
    lastPage: Math.max(1, Math.ceil(matching.length / query.pageSize)),
  };
}

/**
 * Whether a job item's metadata holds every pair of the query's filter:
 * its params are decoded only when there is a filter, and before the job
 * is settled, so a job left out costs no write.
 */
function paramsMatch(item: Item, query: ListJobsQuery): boolean {
  const filter = query.metadata;
  if (filter === undefined || Object.keys(filter).length === 0) return true;
  return metadataMatches(paramsOf(item).metadata, filter);
}

/** The item's owner, decoded only when the query filters on it ("" otherwise, unread). */
function ownerOf(item: Item, query: ListJobsQuery): string {
  return query.owner === undefined ? "" : paramsOf(item).owner;
}

function paramsOf(item: Item) {
  return fromBinary(JobParamsSchema, item.params?.B ?? new Uint8Array());
}

async function scanAll(ctx: AwsStoreContext, input: ScanCommandInput): Promise<Item[]> {
  return await allPages(
    ctx,
    "DynamoDB Scan",
    (start) => new ScanCommand({ ...input, ...start }),
  );
}

async function queryAll(ctx: AwsStoreContext, input: QueryCommandInput): Promise<Item[]> {
  return await allPages(
    ctx,
    "DynamoDB Query",
    (start) => new QueryCommand({ ...input, ...start }),
  );
}

/** Every item of a paged Scan or Query. */
async function allPages(
  ctx: AwsStoreContext,
  operation: string,
  command: (start: { ExclusiveStartKey?: Item }) => ScanCommand | QueryCommand,
): Promise<Item[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const page = command(start === undefined ? {} : { ExclusiveStartKey: start });
    const out = await ctx.call(
      operation,
      () =>
        page instanceof ScanCommand
          ? ctx.ddb.send(page, ctx.abort())
          : ctx.ddb.send(page, ctx.abort()),
    );
    items.push(...(out?.Items ?? []));
    start = out?.LastEvaluatedKey;
  } while (start !== undefined);
  return items;
}
