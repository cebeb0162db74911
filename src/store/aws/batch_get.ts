/**
 * Consistent reads of many items of the jobs table: BatchGetItem, at most
 * 100 keys a call, sending again the keys DynamoDB leaves unprocessed
 * (with backoff, counted as enqueue_batch.ts counts BatchWriteItem's
 * rounds). For schedules (the directory's names) and dependencies (a
 * waiting job's jobs).
 *
 * @module
 */
import { BatchGetItemCommand } from "@aws-sdk/client-dynamodb";
import { BackendUnavailableError } from "../errors.ts";
import { countStoreMetric } from "../store_meter.ts";
import { DYNAMODB_BATCH_RETRIES } from "./aws_limits.ts";
import { sendUntilNoneLeft } from "./batching.ts";
import type { Item } from "./job_item.ts";
import type { AwsStoreContext } from "./store_context.ts";

/** Most keys one BatchGetItem takes. */
export const BATCH_GET_MAX = 100;

/** The items of `keys` that exist (at most {@link BATCH_GET_MAX} keys), consistently read. */
export async function batchGetItems(ctx: AwsStoreContext, keys: readonly Item[]): Promise<Item[]> {
  const items: Item[] = [];
  let pending: Item[] = [...keys];
  await sendUntilNoneLeft(async (retries) => {
    const out = await ctx.call("DynamoDB BatchGetItem", () =>
      ctx.ddb.send(
        new BatchGetItemCommand({
          RequestItems: { [ctx.jobsTable]: { Keys: pending, ConsistentRead: true } },
        }),
        ctx.abort(),
      ));
    items.push(...(out?.Responses?.[ctx.jobsTable] ?? []));
    pending = out?.UnprocessedKeys?.[ctx.jobsTable]?.Keys ?? [];
    if (pending.length === 0) return pending;
    if (retries >= DYNAMODB_BATCH_RETRIES) {
      throw new BackendUnavailableError(
        "DynamoDB BatchGetItem",
        `keys stayed unprocessed after ${retries} retries`,
      );
    }
    countStoreMetric("airunner.dynamodb.batch_retries.total", 1, {
      operation: "BatchGetItemCommand",
    });
    return pending;
  }, { clock: ctx.clock, signal: ctx.closing });
  // The store closed during a backoff: as the next round would, refuse.
  if (pending.length > 0) ctx.assertOpen();
  return items;
}
