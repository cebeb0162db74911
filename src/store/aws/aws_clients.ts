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
import { SDK_MAX_ATTEMPTS } from "./aws_errors.ts";

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
