/**
 * Where a server keeps its jobs: `--store`, `--data-dir`, `--retention`,
 * shared by `server` and `dev` (which differ only in the default data dir).
 *
 * @module
 */
import { Option } from "@commander-js/extra-typings";
import { join } from "node:path";
import type { Logger } from "../logger.ts";
import { defaultDataDir, openDataDirStore } from "../store/data_dir.ts";
import type { DiskNotice } from "../store/disk_errors.ts";
import type { JobStore } from "../store/job_store.ts";
import { MemoryJobStore } from "../store/memory_store.ts";
import { parseByteSize, parseDurationMs } from "./parse.ts";
import type { AwsSettings } from "./aws_options.ts";

/** Store backends `--store` accepts. */
export const STORE_KINDS = ["sqlite", "memory"] as const;
/** One of {@link STORE_KINDS}. */
export type StoreKind = typeof STORE_KINDS[number];

/** `--store sqlite|memory`. */
export function storeKindOption() {
  return new Option("--store <kind>", "where jobs live: sqlite (durable) or memory (lost on exit)")
    .choices(STORE_KINDS).env("AIRUNNER_STORE").default("sqlite" as StoreKind);
}

/** `--data-dir DIR`. */
export function dataDirOption(defaultDir: string) {
  return new Option("--data-dir <dir>", "directory of the sqlite store").env("AIRUNNER_DATA_DIR")
    .default(defaultDir);
}

/** `--retention DURATION`. */
export function retentionOption() {
  return new Option(
    "--retention <duration>",
    "delete finished jobs and their logs after this long (0 keeps them)",
  ).env("AIRUNNER_RETENTION").default("30d");
}

/** Largest `--max-job-output`: the largest byte count a JavaScript number holds exactly. */
export const MAX_JOB_OUTPUT_LIMIT = Number.MAX_SAFE_INTEGER;

/** `--max-job-output SIZE`, of server, dev and orchestrator. */
export function maxJobOutputOption() {
  return new Option(
    "--max-job-output <size>",
    'most output one job stores, over all its attempts (e.g. 64MiB, 1GiB; 0: no cap); past it one line "output truncated after N bytes" and the job runs on',
  ).env("AIRUNNER_MAX_JOB_OUTPUT").default("256MiB");
}

/** The byte count of `--max-job-output`. */
export function parseMaxJobOutput(value: string): number {
  return parseByteSize(value, "--max-job-output", MAX_JOB_OUTPUT_LIMIT);
}

/** The settings of the store flags. */
export type StoreConfig = EmbeddedStoreConfig | AwsStoreConfig;

/** The memory and sqlite stores. */
export interface EmbeddedStoreConfig {
  readonly kind: StoreKind;
  readonly dataDir: string;
  readonly retentionMs: number;
  /** Most output bytes a job stores; 0: no cap. */
  readonly maxJobOutputBytes: number;
}

/** The AWS store (`airunner orchestrator`); `dataDir` holds only `--tls auto` files. */
export interface AwsStoreConfig {
  readonly kind: "aws";
  readonly dataDir: string;
  readonly aws: AwsSettings;
  /** Most output bytes a job stores; 0: no cap. */
  readonly maxJobOutputBytes: number;
}

/** Turns the store flags into settings. */
export function parseStoreConfig(opts: {
  store: StoreKind;
  dataDir: string;
  retention: string;
  maxJobOutput: string;
}): EmbeddedStoreConfig {
  return {
    kind: opts.store,
    dataDir: opts.dataDir,
    retentionMs: parseDurationMs(opts.retention, "--retention"),
    maxJobOutputBytes: parseMaxJobOutput(opts.maxJobOutput),
  };
}

/** The default data dir of `airunner server`: the platform's user data directory. */
export function serverDataDirDefault(): string {
  return defaultDataDir();
}

/** The default data dir of `airunner dev`: ./.airunner in the current directory. */
export const DEV_DATA_DIR = ".airunner";

/** Opens the configured store; returns it with a sentence saying where the data is. */
export async function openConfiguredStore(
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
