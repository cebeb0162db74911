/**
 * The SDK clients of the AWS store, configured once: the standard region and
 * credential chain, endpoint overrides (AWS_ENDPOINT_URL_SQS,
 * AWS_ENDPOINT_URL_DYNAMODB) for emulators, and the SDK's own retries with
 * backoff for throttling and transient faults.
 *
 * @module
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { SDK_MAX_ATTEMPTS, THROTTLING_ERRORS } from "./aws_errors.ts";
import { countStoreMetric } from "../store_meter.ts";

/** Where the services are; unset fields come from the SDK's standard chain. */
export interface AwsEndpoints {
  readonly region?: string | undefined;
  readonly sqsEndpoint?: string | undefined;
  readonly dynamodbEndpoint?: string | undefined;
}

/** The two clients. */
export interface AwsClients {
  readonly dynamodb: DynamoDBClient;
  readonly sqs: SQSClient;
  /** Closes their connections. */
  destroy(): void;
}

/** Creates the clients. */
export function createAwsClients(endpoints: AwsEndpoints = {}): AwsClients {
  const common = {
    maxAttempts: SDK_MAX_ATTEMPTS,
    ...(endpoints.region === undefined ? {} : { region: endpoints.region }),
  };
  const dynamodb = new DynamoDBClient({
    ...common,
    ...(endpoints.dynamodbEndpoint === undefined ? {} : { endpoint: endpoints.dynamodbEndpoint }),
  });
  countDynamoDbCalls(dynamodb);
  // With an endpoint set, the SDK sends to it rather than to each queue URL's host.
  const sqs = new SQSClient({
    ...common,
    ...(endpoints.sqsEndpoint === undefined ? {} : { endpoint: endpoints.sqsEndpoint }),
  });
  return {
    dynamodb,
    sqs,
    destroy() {
      dynamodb.destroy();
      sqs.destroy();
    },
  };
}

/**
 * Counts every DynamoDB call (airunner.dynamodb.operations.total), the ones
 * that needed the SDK's retries (batch_retries) and the ones still throttled
 * after them (throttles), by operation.
 */
function countDynamoDbCalls(dynamodb: DynamoDBClient): void {
  dynamodb.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = context.commandName ?? "unknown";
      countStoreMetric("airunner.dynamodb.operations.total", 1, { operation });
      try {
        const result = await next(args);
        const attempts = (result.output as { $metadata?: { attempts?: number } }).$metadata
          ?.attempts ?? 1;
        if (attempts > 1) {
          countStoreMetric("airunner.dynamodb.batch_retries.total", attempts - 1, { operation });
        }
        return result;
      } catch (error) {
        if (THROTTLING_ERRORS.has((error as { name?: string }).name ?? "")) {
          countStoreMetric("airunner.dynamodb.throttles.total", 1, { operation });
        }
        throw error;
      }
    },
    { step: "initialize", name: "airunnerCallCounter" },
  );
}
