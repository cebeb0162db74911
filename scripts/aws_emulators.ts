/**
 * The AWS stand-ins, started in this process on 127.0.0.1: dynalite for
 * DynamoDB and fauxqs for SQS. Tests use them for the AWS store; `deno task
 * emulators` runs them for a person. They are build- and test-only: nothing
 * under src/ imports this module, so the compiled binary does not carry them.
 *
 * @module
 */
import dynalite from "dynalite";
import { buildApp } from "fauxqs";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";

/** Running stand-ins and how to reach them. */
export interface AwsEmulators extends AsyncDisposable {
  /** For AWS_ENDPOINT_URL_DYNAMODB. */
  readonly dynamodbEndpoint: string;
  /** For AWS_ENDPOINT_URL_SQS. */
  readonly sqsEndpoint: string;
  /** Region and dummy credentials the SDK needs; the stand-ins accept any. */
  readonly env: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

/** Starts both stand-ins on free (or the given) loopback ports. */
export async function startAwsEmulators(
  ports: { dynamodb?: number | undefined; sqs?: number | undefined } = {},
): Promise<AwsEmulators> {
  const dynamo: Server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    dynamo.once("error", reject);
    dynamo.listen(ports.dynamodb ?? 0, "127.0.0.1", () => resolve());
  });
  const sqs = buildApp({ logger: false, host: "127.0.0.1" });
  await sqs.listen({ host: "127.0.0.1", port: ports.sqs ?? 0 });
  const sqsPort = (sqs.server.address() as AddressInfo).port;
  const dynamoPort = (dynamo.address() as AddressInfo).port;
  const dynamodbEndpoint = `http://127.0.0.1:${dynamoPort}`;
  const sqsEndpoint = `http://127.0.0.1:${sqsPort}`;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      await sqs.close();
      await new Promise<void>((resolve) => {
        dynamo.close(() => resolve());
        // Long polls and keep-alive sockets would hold close() open.
        (dynamo as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
      });
    })();
  return {
    dynamodbEndpoint,
    sqsEndpoint,
    env: {
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      AWS_ENDPOINT_URL_DYNAMODB: dynamodbEndpoint,
      AWS_ENDPOINT_URL_SQS: sqsEndpoint,
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
