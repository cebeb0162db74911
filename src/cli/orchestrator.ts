/**
 * `airunner orchestrator`: the server on the AWS store (SQS + DynamoDB), for
 * several stateless servers behind one address; `airunner orchestrator
 * init` creates the queues and tables it needs.
 *
 * @module
 */
import { defaultRetryOptions, defaultRetryPolicyOf } from "./retry_default_options.ts";
import { Command, Option } from "@commander-js/extra-typings";
import { environmentKeyOf } from "../store/aws/queue_env.ts";
import { validateQueueName } from "../protocol/request_validation.ts";
import { awsOptions, parseAwsSettings } from "./aws_options.ts";
import type { ExitCodeSink } from "./common_options.ts";
import { listenOption, logLevelOption } from "./commander_options.ts";
import { reportError } from "./errors.ts";
import { parseListenAddress, UsageError } from "./parse.ts";
import { runServer } from "./server.ts";
import {
  dataDirOption,
  maxJobOutputOption,
  parseMaxJobOutput,
  serverDataDirDefault,
} from "./store_options.ts";
import {
  jwtPublicKeyOption,
  noAuthOption,
  tlsCertOption,
  tlsKeyOption,
  tlsModeOption,
} from "./security_options.ts";
import { bandQueueNames, reservedQueueNameProblem } from "../store/aws/priority_bands.ts";

/** Queues `orchestrator init` creates unless told otherwise. */
const DEFAULT_QUEUES = ["default", "priority"];

/** Builds `orchestrator` and its `init` subcommand. */
export function orchestratorCommand(setExitCode: ExitCodeSink) {
  const [sqsQueue, jobsTable, eventsTable, eventsTtl, queuePrefix, region] = awsOptions();
  const orchestrator = new Command("orchestrator")
    .description("serve the job queue API on AWS SQS + DynamoDB (orchestrator init: create them)")
    // `orchestrator init --jobs-table X`: flags after "init" are init's.
    .enablePositionalOptions()
    .addOption(listenOption())
    .addOption(sqsQueue)
    .addOption(jobsTable)
    .addOption(eventsTable)
    .addOption(eventsTtl)
    .addOption(queuePrefix)
    .addOption(region)
    .addOption(dataDirOption(serverDataDirDefault()).hideHelp())
    .addOption(maxJobOutputOption())
    .addOption(jwtPublicKeyOption())
    .addOption(noAuthOption())
    .addOption(tlsCertOption())
    .addOption(tlsKeyOption())
    .addOption(tlsModeOption())
    .addOption(defaultRetryOptions()[0])
    .addOption(defaultRetryOptions()[1])
    .addOption(logLevelOption())
    .addHelpText(
      "after",
      `
Environment: AIRUNNER_TOKEN_SIGNING_SECRET (required, at least 32 bytes, the
same on every orchestrator), AWS_REGION and the standard AWS credential
chain, AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL_DYNAMODB (for emulators).

Examples:
  airunner orchestrator init --jobs-table airunner-jobs --events-table airunner-events
  airunner orchestrator --listen 0.0.0.0:8080 --jwt-public-key public.pem \\
    --jobs-table airunner-jobs --events-table airunner-events`,
    )
    .action(async (opts) => {
      try {
        const listen = parseListenAddress(opts.listen);
        const maxJobOutputBytes = parseMaxJobOutput(opts.maxJobOutput);
        setExitCode(
          await runServer({
            listen,
            store: {
              kind: "aws",
              dataDir: opts.dataDir,
              aws: parseAwsSettings(opts),
              maxJobOutputBytes,
            },
            logLevel: opts.logLevel,
            security: opts,
            defaultRetry: defaultRetryPolicyOf(opts),
          }),
        );
      } catch (error) {
        setExitCode(reportError(error));
      }
    });
  orchestrator.addCommand(initCommand(setExitCode));
  return orchestrator;
}

function initCommand(setExitCode: ExitCodeSink) {
  const [sqsQueue, jobsTable, eventsTable, eventsTtl, queuePrefix, region] = awsOptions();
  return new Command("init")
    .description("create the SQS queues (with dead-letter queues) and DynamoDB tables if missing")
    .addOption(
      new Option("--queue <name>", "a queue to create (repeatable; default: default and priority)")
        .argParser((value, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .addOption(sqsQueue)
    .addOption(jobsTable)
    .addOption(eventsTable)
    .addOption(eventsTtl)
    .addOption(queuePrefix)
    .addOption(region)
    .action(async (opts) => {
      try {
        const settings = parseAwsSettings(opts, Deno.env.get, Object.keys(Deno.env.toObject()), {
          secret: false,
        });
        const names = opts.queue ?? DEFAULT_QUEUES;
        for (const name of names) {
          try {
            validateQueueName(name);
          } catch (error) {
            throw new UsageError(`--queue: ${(error as Error).message}`);
          }
          const reserved = reservedQueueNameProblem(name);
          if (reserved !== undefined) throw new UsageError(`--queue: "${name}" ${reserved}`);
        }
        // Each queue with its priority bands (<name>-hi, <name>-lo); queues
        // given by URL exist already, the rest are <prefix><name>.
        const sqsQueues = names.flatMap((n) => bandQueueNames(n)).filter((n) =>
          !settings.queueUrls.has(n) && !settings.queueUrls.has(environmentKeyOf(n))
        ).map((n) => `${settings.queuePrefix}${n}`);
        // Loaded only here, so other commands start without the AWS SDK.
        const { createAwsClients } = await import("../store/aws/aws_clients.ts");
        const { provisionAwsResources } = await import("../store/aws/provision.ts");
        const clients = createAwsClients(settings);
        try {
          const report = await provisionAwsResources(clients, {
            jobsTable: settings.jobsTable,
            eventsTable: settings.eventsTable,
            sqsQueues,
          });
          for (const line of report.created) console.error(`airunner: created ${line}`);
          for (const line of report.existing) console.error(`airunner: exists: ${line}`);
        } finally {
          clients.destroy();
        }
        setExitCode(0);
      } catch (error) {
        setExitCode(reportError(error));
      }
    });
}
