/**
 * `deno task emulators`: runs the AWS stand-ins (dynalite for DynamoDB,
 * fauxqs for SQS) on 127.0.0.1 until Ctrl-C, and prints on stdout, as
 * `export NAME=value` lines, everything `airunner orchestrator init` and
 * `airunner orchestrator` need to use them:
 *
 *   deno task emulators > /tmp/aws.env &            # run in the background
 *   . /tmp/aws.env && deno task airunner orchestrator init && deno task airunner orchestrator --no-auth
 *
 * `--dynamodb-port N` and `--sqs-port N` pick the ports (default: free ones).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startAwsEmulators } from "./aws_emulators.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "dynamodb-port": { type: "string" },
    "sqs-port": { type: "string" },
  },
});

function port(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    console.error(`emulators: error: ${flag}: "${value}" is not a port (1-65535)`);
    Deno.exit(2);
  }
  return n;
}

const emulators = await startAwsEmulators({
  dynamodb: port(values["dynamodb-port"], "--dynamodb-port"),
  sqs: port(values["sqs-port"], "--sqs-port"),
});
const secret = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(48))));
const env: Record<string, string> = {
  ...emulators.env,
  AIRUNNER_DYNAMODB_JOBS_TABLE: "airunner-jobs",
  AIRUNNER_DYNAMODB_EVENTS_TABLE: "airunner-events",
  AIRUNNER_TOKEN_SIGNING_SECRET: secret,
};
for (const [name, value] of Object.entries(env)) console.log(`export ${name}='${value}'`);
console.error(
  `emulators: DynamoDB (dynalite) at ${emulators.dynamodbEndpoint}, SQS (fauxqs) at ${emulators.sqsEndpoint}; in memory, gone when this stops (Ctrl-C)`,
);
console.error(
  "emulators: with the lines above exported, run: airunner orchestrator init, then: airunner orchestrator --no-auth",
);

const stop = Promise.withResolvers<void>();
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, stop.resolve);
await stop.promise;
await emulators.stop();
