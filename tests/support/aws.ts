/**
 * AWS stand-ins for tests: one dynalite + fauxqs pair per test module, and
 * fresh tables and queues (unique names) per store under test.
 *
 * @module
 */
import { type AwsEmulators, startAwsEmulators } from "../../scripts/aws_emulators.ts";
import { type AwsClients, createAwsClients } from "../../src/store/aws/aws_clients.ts";
import { provisionAwsResources } from "../../src/store/aws/provision.ts";
import { bandQueueNames } from "../../src/store/aws/priority_bands.ts";

export type { AwsEmulators };
export { startAwsEmulators };

/** Names of a fresh set of AWS resources. */
export interface AwsNames {
  readonly jobsTable: string;
  readonly eventsTable: string;
  readonly queuePrefix: string;
}

/** Clients for `emulators`, with the SDK's credentials and region taken from the stand-ins. */
export function emulatorClients(emulators: AwsEmulators): AwsClients {
  for (const [name, value] of Object.entries(emulators.env)) Deno.env.set(name, value);
  return createAwsClients({
    region: emulators.env.AWS_REGION,
    sqsEndpoint: emulators.sqsEndpoint,
    dynamodbEndpoint: emulators.dynamodbEndpoint,
  });
}

/**
 * Creates tables and the given queues under unique names, each with its
 * priority band queues unless `bands` is false (a deployment from before them).
 */
export async function freshAwsResources(
  clients: AwsClients,
  queues: readonly string[] = ["default", "other"],
  bands = true,
): Promise<AwsNames> {
  const id = crypto.randomUUID().slice(0, 8);
  const names = {
    jobsTable: `t${id}-jobs`,
    eventsTable: `t${id}-events`,
    queuePrefix: `t${id}-`,
  };
  await provisionAwsResources(clients, {
    jobsTable: names.jobsTable,
    eventsTable: names.eventsTable,
    sqsQueues: queues.flatMap((q) => bands ? bandQueueNames(q) : [q]).map((q) =>
      `${names.queuePrefix}${q}`
    ),
  });
  return names;
}
