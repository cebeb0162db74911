import assert from "node:assert/strict";
import { parseAwsSettings } from "../../src/cli/aws_options.ts";
import { UsageError } from "../../src/cli/parse.ts";
import { environmentKeyOf } from "../../src/store/aws/queue_env.ts";

const SECRET = "0123456789abcdef0123456789abcdef";
const base = { eventsTtl: "30d", queuePrefix: "airunner-" };

function envOf(vars: Record<string, string>) {
  return [(name: string) => vars[name], Object.keys(vars)] as const;
}

Deno.test("AWS settings come from flags and environment", () => {
  const [get, names] = envOf({
    AIRUNNER_TOKEN_SIGNING_SECRET: SECRET,
    AIRUNNER_SQS_QUEUE_DEFAULT: "https://sqs.example/1/default",
    AIRUNNER_SQS_QUEUE_BUILD_FAST: "https://sqs.example/1/fast",
    AWS_ENDPOINT_URL_SQS: "http://127.0.0.1:1",
  });
  const settings = parseAwsSettings(
    {
      ...base,
      jobsTable: "jobs",
      eventsTable: "events",
      sqsQueue: ["priority=https://sqs.example/1/prio"],
      eventsTtl: "7d",
    },
    get,
    names,
  );
  assert.equal(settings.jobsTable, "jobs");
  assert.equal(settings.eventsTtlMs, 7 * 86_400_000);
  assert.equal(settings.queueUrls.get("priority"), "https://sqs.example/1/prio");
  assert.equal(
    settings.queueUrls.get(environmentKeyOf("default")),
    "https://sqs.example/1/default",
  );
  assert.equal(
    settings.queueUrls.get(environmentKeyOf("build-fast")),
    "https://sqs.example/1/fast",
  );
  assert.equal(settings.sqsEndpoint, "http://127.0.0.1:1");
  assert.equal(settings.dynamodbEndpoint, undefined);
});

Deno.test("every missing AWS setting is named with its flag and variable, at once", () => {
  const [get, names] = envOf({ AIRUNNER_TOKEN_SIGNING_SECRET: "too short" });
  assert.throws(
    () =>
      parseAwsSettings({ ...base, sqsQueue: ["no-equals-sign"], eventsTtl: "soon" }, get, names),
    (error: unknown) => {
      assert.ok(error instanceof UsageError);
      for (
        const part of [
          /--sqs-queue: "no-equals-sign" is not NAME=URL/,
          /--jobs-table \(or AIRUNNER_DYNAMODB_JOBS_TABLE\)/,
          /--events-table \(or AIRUNNER_DYNAMODB_EVENTS_TABLE\)/,
          /AIRUNNER_TOKEN_SIGNING_SECRET: 9 bytes; it must hold at least 32/,
          /--events-ttl/,
        ]
      ) assert.match(error.message, part);
      return true;
    },
  );
});

Deno.test("orchestrator init needs no signing secret", () => {
  const [get, names] = envOf({});
  const settings = parseAwsSettings(
    { ...base, jobsTable: "j", eventsTable: "e" },
    get,
    names,
    { secret: false },
  );
  assert.equal(settings.jobsTable, "j");
});
