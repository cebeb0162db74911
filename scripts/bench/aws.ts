/**
 * What the benchmark says about the AWS store (`airunner orchestrator` on
 * SQS + DynamoDB), which it runs against in-process stand-ins: job counts
 * sized so a scenario stays near a minute, and the notes that go with its
 * figures.
 *
 * @module
 */

/** Jobs per queue-cycle run on the AWS store (the embedded stores run 20,000 / 1,000 quick). */
export const AWS_QUEUE_CYCLE_JOBS = { full: 3_000, quick: 200 } as const;

/**
 * SQS and DynamoDB calls one job costs in the queue cycle, counted in
 * src/store/aws/ (enqueue.ts, receive.ts, completion.ts) for a job without a request_id, taken for the
 * first time (so no highest-sequence Query), whose item is found at the
 * first read.
 */
export const AWS_CALLS_PER_JOB = {
  enqueue: ["SQS SendMessage", "DynamoDB PutItem"],
  dequeue: [
    "SQS ReceiveMessage",
    "DynamoDB GetItem",
    "DynamoDB UpdateItem (conditional claim)",
  ],
  complete: ["DynamoDB GetItem", "DynamoDB UpdateItem (fenced)", "SQS DeleteMessage"],
} as const;

/** The total of {@link AWS_CALLS_PER_JOB}. */
export const AWS_CALLS_PER_JOB_TOTAL = Object.values(AWS_CALLS_PER_JOB).reduce(
  (sum, calls) => sum + calls.length,
  0,
);

/** The note every AWS figure carries: what the stand-ins are, and what real AWS changes. */
export const AWS_STAND_IN_NOTE =
  "on the AWS store these figures measure the stand-ins' speed as much as airunner's: " +
  "dynalite (DynamoDB) and fauxqs (SQS) are single-threaded JavaScript emulators running in " +
  "the bench process, on the same cores as the orchestrator and the load; real AWS has higher " +
  "per-call latency (typically milliseconds per SQS or DynamoDB call), so these figures do not " +
  "predict a deployment's";

/** The per-job calls as one sentence, with their count. */
export function awsCallsSentence(): string {
  const part = (name: keyof typeof AWS_CALLS_PER_JOB) =>
    `${name}: ${AWS_CALLS_PER_JOB[name].join(" + ")}`;
  return `${AWS_CALLS_PER_JOB_TOTAL} SQS/DynamoDB round trips per job, made by the orchestrator ` +
    `(${part("enqueue")}; ${part("dequeue")}; ${part("complete")}), plus one SQS GetQueueUrl ` +
    "per queue per server, remembered";
}

/**
 * The pickup path's wait, from reading src/store/aws/receive.ts: enqueue sends the SQS
 * message before it writes the job, so a consumer already long-polling can
 * read the job before it exists and then reads again after 5 ms, 10 ms, ...
 */
export const AWS_PICKUP_NOTE =
  "on the AWS store a pickup is EnqueueJob (SQS SendMessage, then DynamoDB PutItem) racing the " +
  "waiting claim (ReceiveMessage answers, then GetItem, UpdateItem); when the GetItem " +
  "runs before the PutItem lands, the claim reads again after 5 ms, then 10 ms, ... " +
  "(src/store/aws/receive.ts itemSoon), which adds a few ms to such a pickup and start";
