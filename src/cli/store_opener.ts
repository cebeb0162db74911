/**
 * Opening the job store a server runs on, in one place for `server`, `dev`
 * and `orchestrator`: memory, sqlite in a data dir, or AWS (whose SDK is
 * loaded only when it is asked for), each with a sentence saying where the
 * data is.
 *
 * @module
 */
import { join } from "node:path";
import type { Logger } from "../logger.ts";
import { openDataDirStore } from "../store/data_dir.ts";
import type { DiskNotice } from "../store/disk_errors.ts";
import type { JobStore } from "../store/job_store.ts";
import { MemoryJobStore } from "../store/memory_store.ts";
import type { StoreConfig } from "./store_options.ts";

/** Opens the configured store; returns it with a sentence saying where the data is. */
export async function openStore(
  config: StoreConfig,
  logger: Logger,
): Promise<{ store: JobStore; description: string }> {
  if (config.kind === "memory") {
    return {
      store: new MemoryJobStore({ maxJobOutputBytes: config.maxJobOutputBytes }),
      description: "memory store: jobs are lost when it exits",
    };
  }
  if (config.kind === "aws") {
    // Loaded only here, so other commands start without the AWS SDK.
    const { openAwsStore } = await import("./aws_store_opener.ts");
    return await openAwsStore(config.aws, config.maxJobOutputBytes);
  }
  const store = await openDataDirStore(config.dataDir, {
    retentionMs: config.retentionMs,
    maxJobOutputBytes: config.maxJobOutputBytes,
    onBackgroundError: (error) => logger.error({ err: error }, "retention sweep failed"),
    onDiskNotice: (notice) => logDiskNotice(logger, notice),
  });
  const retention = config.retentionMs > 0
    ? `finished jobs kept ${formatDays(config.retentionMs)}`
    : "finished jobs kept forever";
  return {
    store,
    description: `sqlite store at ${join(config.dataDir, "airunner.db")}; ${retention}`,
  };
}

/** One log line per turn of the store's disk (not one per refused request). */
export function logDiskNotice(logger: Logger, notice: DiskNotice): void {
  switch (notice.kind) {
    case "writes_refused": {
      const detail = notice.detail === "" ? "" : `; ${notice.detail}`;
      logger.error(
        { err: notice.cause, dir: notice.dir },
        `no space left for the job store in ${notice.dir}: new jobs, output and results are refused (resource_exhausted) until space is freed; reads go on${detail}`,
      );
      return;
    }
    case "writes_resumed":
      // warn, as the line it ends: whoever saw that one sees this one.
      logger.warn({ dir: notice.dir }, `the job store in ${notice.dir} takes writes again`);
      return;
    case "modes_tightened":
      for (const { path, fromMode } of notice.files) {
        const from = fromMode.toString(8).padStart(4, "0");
        logger.warn(
          { path, fromMode: from, toMode: "0600" },
          `${path} was mode ${from}: made it 0600, since it holds job environments and output`,
        );
      }
      return;
  }
}

function formatDays(ms: number): string {
  const days = ms / 86_400_000;
  return Number.isInteger(days) ? `${days} days` : `${Math.round(ms / 3_600_000)} hours`;
}
