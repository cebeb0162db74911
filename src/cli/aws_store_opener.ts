/**
 * The AWS half of store_opener.ts, loaded only for `airunner orchestrator`:
 * opens the AWS store after checking that both tables answer (so a wrong
 * region, credentials or table name fails at start, not at the first job).
 *
 * @module
 */
import { DescribeTableCommand } from "@aws-sdk/client-dynamodb";
import { asStoreError } from "../store/aws/aws_errors.ts";
import { createAwsClients } from "../store/aws/aws_clients.ts";
import { AwsJobStore } from "../store/aws/aws_store.ts";
import type { JobStore } from "../store/job_store.ts";
import { TaskTokenCodec } from "../store/task_token.ts";
import type { AwsSettings } from "./aws_options.ts";

/** Opens the store; returns it with a sentence saying where the data is. */
export async function openAwsStore(
  settings: AwsSettings,
  maxJobOutputBytes: number,
): Promise<{ store: JobStore; description: string }> {
  const clients = createAwsClients(settings);
  try {
    for (const table of [settings.jobsTable, settings.eventsTable]) {
      try {
        await clients.dynamodb.send(new DescribeTableCommand({ TableName: table }));
      } catch (error) {
        const hint = (error as { name?: string }).name === "ResourceNotFoundException"
          ? ` (create it with "airunner orchestrator init" or infra/terraform)`
          : "";
        throw new Error(`${asStoreError(`DynamoDB table ${table}`, error).message}${hint}`);
      }
    }
  } catch (error) {
    clients.destroy();
    throw error;
  }
  const store = new AwsJobStore({
    dynamodb: clients.dynamodb,
    sqs: clients.sqs,
    jobsTable: settings.jobsTable,
    eventsTable: settings.eventsTable,
    queueUrls: settings.queueUrls,
    queuePrefix: settings.queuePrefix,
    eventsTtlMs: settings.eventsTtlMs,
    tokenCodec: new TaskTokenCodec(settings.tokenSecret),
    maxJobOutputBytes,
    onClose: () => clients.destroy(),
  });
  return {
    store,
    description:
      `AWS store: DynamoDB tables ${settings.jobsTable} and ${settings.eventsTable}, SQS queues ${
        settings.queueUrls.size > 0 ? `${[...settings.queueUrls.keys()].join(", ")} and ` : ""
      }${settings.queuePrefix}<name>`,
  };
}
