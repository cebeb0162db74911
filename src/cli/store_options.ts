/**
 * Where a server keeps its jobs: `--store`, `--data-dir`, `--retention`,
 * shared by `server` and `dev` (which differ only in the default data dir),
 * and the settings they parse into (store_opener.ts opens the store).
 *
 * @module
 */
import { Option } from "@commander-js/extra-typings";
import { defaultDataDir } from "../store/data_dir.ts";
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
