/**
 * Pure helpers of the AWS store's batch calls: bounded concurrency, chunks
 * of a service's batch size, grouping by queue. (The retries of what a
 * batch call left undone go through ../../retry.ts.)
 *
 * @module
 */
import { settle } from "../batch.ts";
import type { BatchOutcome } from "../job_store.ts";

/** Runs `work` on each item, at most `limit` at a time; answers each, in input order. */
export async function settleBounded<I, T>(
  items: readonly I[],
  limit: number,
  work: (item: I) => Promise<T>,
): Promise<BatchOutcome<T>[]> {
  const outcomes = new Array<BatchOutcome<T>>(items.length);
  let next = 0;
  const runner = async () => {
    while (next < items.length) {
      const index = next++;
      outcomes[index] = await settle(() => work(items[index]!));
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
  return outcomes;
}

export function chunksOf<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

export function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groupInto(groups, key(item), item);
  return groups;
}

export function groupInto<T>(groups: Map<string, T[]>, key: string, item: T): void {
  const group = groups.get(key);
  if (group === undefined) groups.set(key, [item]);
  else group.push(item);
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
