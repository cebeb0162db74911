/**
 * `airunner orchestrator init`: creates the SQS queues (each with a
 * dead-letter queue) and the DynamoDB tables the AWS store needs, with the
 * wire contract's layout, skipping whatever exists. For emulators and first
 * deployments; infra/terraform is the way to manage production.
 *
 * @module
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { MAX_RETRIES } from "../../protocol/limits.ts";
import { asStoreError, isQueueMissing } from "./aws_errors.ts";
import { QUEUE_INDEX, REQUEST_ID_INDEX } from "./job_item.ts";

/**
 * Receives of one message before SQS moves it to the dead-letter queue.
 * Each attempt has a message of its own (a retry, a lost lease and a
 * hand-back each send the next attempt's and delete the last one's), so a
 * message sees a few receives: its lease, the receipt after the lease ran
 * out, the put-backs of a long wait or a 12-hour lease. Even were every
 * attempt of the largest budget received through one message, it would
 * stay below this (checked below).
 */
export const MAX_RECEIVE_COUNT = 200;
if (MAX_RETRIES + 1 >= MAX_RECEIVE_COUNT) {
  throw new Error(
    `MAX_RECEIVE_COUNT (${MAX_RECEIVE_COUNT}) must exceed a job's most attempts, MAX_RETRIES + 1 (${
      MAX_RETRIES + 1
    })`,
  );
}
/** SQS's longest message retention: 14 days. */
const RETENTION_SECONDS = 1_209_600;

/** What to create. */
export interface AwsResources {
  readonly jobsTable: string;
  readonly eventsTable: string;
  /** SQS queue names (already prefixed). */
  readonly sqsQueues: readonly string[];
  /** Receives of one message before SQS dead-letters it: MAX_RECEIVE_COUNT unless given (tests). */
  readonly maxReceiveCount?: number;
}

/** One line per resource: what was created and what existed. */
export interface ProvisionReport {
  readonly created: string[];
  readonly existing: string[];
  /** URL of each SQS queue by its name. */
  readonly queueUrls: Map<string, string>;
}

/** Creates every missing resource; returns what it did. */
export async function provisionAwsResources(
  clients: { dynamodb: DynamoDBClient; sqs: SQSClient },
  resources: AwsResources,
): Promise<ProvisionReport> {
  const report: ProvisionReport = { created: [], existing: [], queueUrls: new Map() };
  await ensureTable(clients.dynamodb, report, resources.jobsTable, {
    AttributeDefinitions: [
      { AttributeName: "job_id", AttributeType: "S" },
      { AttributeName: "queue", AttributeType: "S" },
      { AttributeName: "created_at", AttributeType: "N" },
      { AttributeName: "request_id", AttributeType: "S" },
    ],
    KeySchema: [{ AttributeName: "job_id", KeyType: "HASH" }],
    GlobalSecondaryIndexes: [
      {
        IndexName: QUEUE_INDEX,
        KeySchema: [
          { AttributeName: "queue", KeyType: "HASH" },
          { AttributeName: "created_at", KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "ALL" },
      },
      {
        IndexName: REQUEST_ID_INDEX,
        KeySchema: [{ AttributeName: "request_id", KeyType: "HASH" }],
        Projection: { ProjectionType: "KEYS_ONLY" },
      },
    ],
  });
  await ensureTable(clients.dynamodb, report, resources.eventsTable, {
    AttributeDefinitions: [
      { AttributeName: "job_id", AttributeType: "S" },
      { AttributeName: "sequence", AttributeType: "N" },
    ],
    KeySchema: [
      { AttributeName: "job_id", KeyType: "HASH" },
      { AttributeName: "sequence", KeyType: "RANGE" },
    ],
  });
  for (const name of resources.sqsQueues) {
    report.queueUrls.set(
      name,
      await ensureQueue(clients.sqs, report, name, resources.maxReceiveCount ?? MAX_RECEIVE_COUNT),
    );
  }
  return report;
}

type TableLayout = Pick<
  ConstructorParameters<typeof CreateTableCommand>[0],
  "AttributeDefinitions" | "KeySchema" | "GlobalSecondaryIndexes"
>;

async function ensureTable(
  dynamodb: DynamoDBClient,
  report: ProvisionReport,
  name: string,
  layout: TableLayout,
): Promise<void> {
  try {
    await dynamodb.send(new DescribeTableCommand({ TableName: name }));
    report.existing.push(`DynamoDB table ${name}`);
    return;
  } catch (error) {
    if ((error as { name?: string }).name !== "ResourceNotFoundException") {
      throw asStoreError(`DynamoDB DescribeTable ${name}`, error);
    }
  }
  try {
    await dynamodb.send(
      new CreateTableCommand({ TableName: name, BillingMode: "PAY_PER_REQUEST", ...layout }),
    );
    await waitUntilActive(dynamodb, name);
    await dynamodb.send(
      new UpdateTimeToLiveCommand({
        TableName: name,
        TimeToLiveSpecification: { AttributeName: "ttl", Enabled: true },
      }),
    ).catch(() => {
      // Some stand-ins lack TTL; the store treats expired items as gone anyway.
    });
  } catch (error) {
    throw asStoreError(`DynamoDB CreateTable ${name}`, error);
  }
  report.created.push(`DynamoDB table ${name}`);
}

async function waitUntilActive(dynamodb: DynamoDBClient, name: string): Promise<void> {
  for (let tries = 0; tries < 120; tries++) {
    const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: name }));
    if (Table?.TableStatus === "ACTIVE") return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`table ${name} did not become ACTIVE within 60 s`);
}

async function ensureQueue(
  sqs: SQSClient,
  report: ProvisionReport,
  name: string,
  maxReceiveCount: number,
): Promise<string> {
  const existing = await queueUrlOf(sqs, name);
  if (existing !== undefined) {
    report.existing.push(`SQS queue ${name}`);
    return existing;
  }
  try {
    const dlqName = `${name}-dlq`;
    let dlqUrl = await queueUrlOf(sqs, dlqName);
    if (dlqUrl === undefined) {
      dlqUrl = (await sqs.send(
        new CreateQueueCommand({
          QueueName: dlqName,
          Attributes: { MessageRetentionPeriod: String(RETENTION_SECONDS) },
        }),
      )).QueueUrl!;
      report.created.push(`SQS queue ${dlqName}`);
    }
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ["QueueArn"] }),
    );
    const { QueueUrl } = await sqs.send(
      new CreateQueueCommand({
        QueueName: name,
        Attributes: {
          MessageRetentionPeriod: String(RETENTION_SECONDS),
          ReceiveMessageWaitTimeSeconds: "20",
          RedrivePolicy: JSON.stringify({
            deadLetterTargetArn: Attributes?.QueueArn,
            maxReceiveCount,
          }),
        },
      }),
    );
    report.created.push(`SQS queue ${name} (dead letters: ${dlqName})`);
    return QueueUrl!;
  } catch (error) {
    throw asStoreError(`SQS CreateQueue ${name}`, error);
  }
}

async function queueUrlOf(sqs: SQSClient, name: string): Promise<string | undefined> {
  try {
    return (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
  } catch (error) {
    if (isQueueMissing(error)) return undefined;
    throw asStoreError(`SQS GetQueueUrl ${name}`, error);
  }
}
