/**
 * The settings of `airunner orchestrator` (the AWS store): queue URLs,
 * tables, events TTL, queue prefix, the task-token secret, region and
 * endpoints. Every setting has a flag and an environment variable; missing
 * ones are reported together, each naming both.
 *
 * @module
 */
import { Option } from "@commander-js/extra-typings";
import { MIN_SECRET_BYTES } from "../store/task_token.ts";
import { parseDurationMs, UsageError } from "./parse.ts";
import { validateQueueName } from "../protocol/request_validation.ts";

/** Environment variables naming one queue's URL: AIRUNNER_SQS_QUEUE_<NAME>. */
const QUEUE_URL_ENV_PREFIX = "AIRUNNER_SQS_QUEUE_";

/** The AWS store's settings, checked. */
export interface AwsSettings {
  /**
   * Queue URLs by airunner queue name (from --sqs-queue) or by the suffix of
   * an AIRUNNER_SQS_QUEUE_<NAME> variable (see QueueDirectory).
   */
  readonly queueUrls: Map<string, string>;
  readonly queuePrefix: string;
  readonly jobsTable: string;
  readonly eventsTable: string;
  readonly eventsTtlMs: number;
  readonly tokenSecret: Uint8Array;
  readonly region?: string | undefined;
  readonly sqsEndpoint?: string | undefined;
  readonly dynamodbEndpoint?: string | undefined;
}

/** The raw flag values. */
export interface AwsFlags {
  readonly sqsQueue?: string[] | undefined;
  readonly jobsTable?: string | undefined;
  readonly eventsTable?: string | undefined;
  readonly eventsTtl: string;
  readonly queuePrefix: string;
  readonly region?: string | undefined;
}

/** The flags, for `orchestrator` and `orchestrator init`. */
export function awsOptions() {
  return [
    new Option(
      "--sqs-queue <name=url>",
      "SQS queue URL of an airunner queue (repeatable; also AIRUNNER_SQS_QUEUE_<NAME>)",
    ).argParser((value, previous: string[] | undefined) => [...(previous ?? []), value]),
    new Option("--jobs-table <name>", "DynamoDB table of jobs").env(
      "AIRUNNER_DYNAMODB_JOBS_TABLE",
    ),
    new Option("--events-table <name>", "DynamoDB table of job events").env(
      "AIRUNNER_DYNAMODB_EVENTS_TABLE",
    ),
    new Option(
      "--events-ttl <duration>",
      "how long events and finished jobs are kept (DynamoDB TTL)",
    ).env("AIRUNNER_EVENTS_TTL").default("30d"),
    new Option(
      "--queue-prefix <prefix>",
      "SQS name prefix of queues without a configured URL",
    ).env("AIRUNNER_QUEUE_PREFIX").default("airunner-"),
    new Option("--region <region>", "AWS region (else the SDK's standard chain)").env(
      "AWS_REGION",
    ),
  ] as const;
}

/**
 * Checks the flags and environment. Missing settings are reported together,
 * one line each naming the flag and the variable.
 * @throws {UsageError} when any setting is missing or malformed.
 */
export function parseAwsSettings(
  flags: AwsFlags,
  env: (name: string) => string | undefined = Deno.env.get,
  envNames: readonly string[] = Object.keys(Deno.env.toObject()),
  needs: { secret: boolean } = { secret: true },
): AwsSettings {
  const problems: string[] = [];
  const queueUrls = new Map<string, string>();
  for (const name of envNames) {
    if (!name.startsWith(QUEUE_URL_ENV_PREFIX)) continue;
    const url = env(name) ?? "";
    if (url === "") continue;
    // Kept as written (DEFAULT, BUILD_FAST); the store matches queue names to it.
    queueUrls.set(name.slice(QUEUE_URL_ENV_PREFIX.length), url);
  }
  for (const entry of flags.sqsQueue ?? []) {
    const eq = entry.indexOf("=");
    const name = entry.slice(0, eq);
    const url = entry.slice(eq + 1);
    if (eq <= 0 || !/^https?:\/\//.test(url)) {
      problems.push(`--sqs-queue: "${entry}" is not NAME=URL (an https:// SQS queue URL)`);
      continue;
    }
    try {
      validateQueueName(name);
    } catch (error) {
      problems.push(`--sqs-queue: ${(error as Error).message}`);
      continue;
    }
    queueUrls.set(name, url);
  }
  const jobsTable = flags.jobsTable ?? "";
  if (jobsTable === "") {
    problems.push("--jobs-table (or AIRUNNER_DYNAMODB_JOBS_TABLE): the DynamoDB table of jobs");
  }
  const eventsTable = flags.eventsTable ?? "";
  if (eventsTable === "") {
    problems.push(
      "--events-table (or AIRUNNER_DYNAMODB_EVENTS_TABLE): the DynamoDB table of job events",
    );
  }
  let tokenSecret = new Uint8Array();
  if (needs.secret) {
    tokenSecret = new TextEncoder().encode(env("AIRUNNER_TOKEN_SIGNING_SECRET") ?? "");
    if (tokenSecret.byteLength < MIN_SECRET_BYTES) {
      problems.push(
        `AIRUNNER_TOKEN_SIGNING_SECRET: ${
          tokenSecret.byteLength === 0 ? "not set" : `${tokenSecret.byteLength} bytes`
        }; it must hold at least ${MIN_SECRET_BYTES} bytes, the same on every orchestrator (for example: openssl rand -base64 48)`,
      );
    }
  }
  let eventsTtlMs = 0;
  try {
    eventsTtlMs = parseDurationMs(flags.eventsTtl, "--events-ttl");
    if (eventsTtlMs <= 0) problems.push("--events-ttl: must be longer than 0");
  } catch (error) {
    problems.push((error as Error).message);
  }
  if (!/^[A-Za-z0-9_-]{0,40}$/.test(flags.queuePrefix)) {
    problems.push("--queue-prefix: up to 40 letters, digits, - and _");
  }
  if (problems.length > 0) {
    throw new UsageError(
      `the AWS store needs these settings: ${problems.map((p, i) => `(${i + 1}) ${p}`).join("; ")}`,
    );
  }
  return {
    queueUrls,
    queuePrefix: flags.queuePrefix,
    jobsTable,
    eventsTable,
    eventsTtlMs,
    tokenSecret,
    region: flags.region === "" ? undefined : flags.region,
    sqsEndpoint: emptyToUndefined(env("AWS_ENDPOINT_URL_SQS")),
    dynamodbEndpoint: emptyToUndefined(env("AWS_ENDPOINT_URL_DYNAMODB")),
  };
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
