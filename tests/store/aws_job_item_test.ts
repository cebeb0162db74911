import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { JobParamsSchema, JobResultSchema, JobState } from "../../gen/job/v1/job_pb.ts";
import { decideLease } from "../../src/store/lifecycle.ts";
import { type ItemUpdate, leaseUpdate } from "../../src/store/aws/job_updates.ts";
import {
  effectiveState,
  isLiveJobItem,
  type Item,
  jobIdOfMessage,
  jobOf,
  jobRecordOf,
  messageBody,
  newJobItem,
  viewOf,
} from "../../src/store/aws/job_item.ts";

const item = newJobItem({
  jobId: "01890a5d-ac96-774b-bcce-b302099a8057",
  notBeforeMs: 0,
  queue: "default",
  requestId: "",
  nowMs: 1_000,
  params: create(JobParamsSchema, { command: "make", args: ["test"] }),
  executionConfig: new Uint8Array(),
});

Deno.test("a new job item decodes to a SCHEDULED job with its parameters", () => {
  const record = jobRecordOf(item);
  assert.equal(record.state, JobState.SCHEDULED);
  assert.equal(item.request_id, undefined, "no request_id: out of the sparse GSI2");
  const job = jobOf(record, 2_000);
  assert.equal(job.jobParams?.command, "make");
  assert.deepEqual(job.jobParams?.args, ["test"]);
  assert.equal(job.queue, "default");
});

Deno.test("a RUNNING job whose lease passed reads as SCHEDULED", () => {
  const running = jobRecordOf({
    ...item,
    state: { N: String(JobState.RUNNING) },
    lease_expires_at: { N: "5000" },
  });
  assert.equal(effectiveState(running, 4_999), JobState.RUNNING);
  assert.equal(effectiveState(running, 5_000), JobState.SCHEDULED);
});

Deno.test("items past their TTL and idempotency claims are not live jobs", () => {
  assert.ok(isLiveJobItem(item, 10_000));
  assert.ok(!isLiveJobItem({ ...item, ttl: { N: "9" } }, 10_000));
  assert.ok(isLiveJobItem({ ...item, ttl: { N: "11" } }, 10_000));
  assert.ok(!isLiveJobItem({ job_id: { S: "request#x" }, idempotency_of: { S: "j" } }, 0));
  assert.ok(!isLiveJobItem(undefined, 0));
});

Deno.test("message bodies carry the job id in the contract's shape", () => {
  const body = messageBody("j1", "default", 0);
  assert.deepEqual(JSON.parse(body), { job_id: "j1", queue: "default", attempt: 0 });
  assert.equal(jobIdOfMessage(body), "j1");
  assert.equal(jobIdOfMessage("not json"), undefined);
  assert.equal(jobIdOfMessage('{"job_id": 5}'), undefined);
  assert.equal(jobIdOfMessage(undefined), undefined);
});

Deno.test("a job record's lifecycle view: its state as of a time, its result decoded", () => {
  const leased = {
    ...item,
    state: { N: String(JobState.RUNNING) },
    lease_expires_at: { N: "5000" },
    cancel_reason: { S: "stop" },
  };
  const cancelled = jobRecordOf(leased);
  // A cancelled job whose lease ran out has ended, whether or not that is written yet.
  assert.equal(effectiveState(cancelled, 4_999), JobState.RUNNING);
  assert.equal(effectiveState(cancelled, 5_000), JobState.CANCELLED);
  assert.equal(viewOf(cancelled).result, undefined);
  const result = create(JobResultSchema, { jobId: cancelled.jobId, exitCode: 3 });
  const finished = jobRecordOf({
    ...leased,
    state: { N: String(JobState.FAILED) },
    result: { B: toBinary(JobResultSchema, result) },
  });
  assert.equal(viewOf(finished).result?.exitCode, 3);
});

Deno.test("an item from before retries reads with no counters, backoff or attempts", () => {
  const record = jobRecordOf(item);
  const view = viewOf(record);
  assert.deepEqual(
    [view.notBeforeMs, view.usedAttempts, view.lostAttempts, view.failureReason, view.retry],
    [0, 0, 0, "", undefined],
  );
  const job = jobOf(record, 2_000);
  assert.deepEqual([job.attempts, job.notBefore, job.failureReason], [[], undefined, ""]);
  // One leased by an older airunner shows its attempt running, from its last update.
  const running = jobOf(
    jobRecordOf({
      ...item,
      state: { N: String(JobState.RUNNING) },
      attempt: { N: "1" },
      lease_expires_at: { N: "9000" },
    }),
    2_000,
  );
  assert.deepEqual(running.attempts.map((a) => [a.number, a.worker, a.endedAt]), [
    [1, "", undefined],
  ]);
});

Deno.test("a lease, a lost lease and the lease after it write the attempts Job.attempts lists", () => {
  const scheduled = jobRecordOf(item);
  const lease = decideLease(viewOf(scheduled), { visibilityTimeoutMs: 1_000 }, 2_000);
  assert.ok(lease.kind === "lease");
  const source = { worker: "w1", receiptHandle: "h", messageId: "m" };
  const leasedItem = applied(item, leaseUpdate(scheduled, lease, 0n, source, 2_000).update);
  const leased = jobRecordOf(leasedItem);
  assert.deepEqual(jobOf(leased, 2_500).attempts.map((a) => [a.number, a.worker]), [[1, "w1"]]);
  // The lease runs out: the next lease closes it as lost and numbers after its notice.
  const again = decideLease(viewOf(leased), { visibilityTimeoutMs: 1_000 }, 3_500);
  assert.ok(again.kind === "lease" && again.lost !== undefined);
  const write = leaseUpdate(leased, again, 2n, { ...source, worker: "" }, 3_500);
  assert.equal(write.notice?.sequence, 3n);
  const relet = jobRecordOf(applied(leasedItem, write.update));
  assert.equal(relet.sequenceBase, 3n);
  assert.deepEqual(
    jobOf(relet, 3_600).attempts.map((a) => [a.number, a.outcome, a.lastSequence, a.worker]),
    [[1, "lost", 2n, "w1"], [2, "", 0n, ""]],
  );
  assert.deepEqual([relet.usedAttempts, relet.lostAttempts], [1, 1]);
});

/** `item` with `update` applied, as DynamoDB would. */
function applied(item: Item, update: ItemUpdate): Item {
  const next: Item = { ...item, ...update.set };
  for (const name of update.remove) delete next[name];
  return next;
}
