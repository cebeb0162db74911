import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  EnqueueJobRequestSchema,
  type EnqueueJobsResult,
  EnqueueJobsResultSchema,
} from "../../gen/job/v1/job_pb.ts";
import { type BatchJob, enqueueChunk } from "../../src/cli/batch_submit.ts";

const jobs: BatchJob[] = [1, 2, 3].map((line) => ({
  line,
  request: create(EnqueueJobRequestSchema, { queue: "default", requestId: `r${line}` }),
}));

const ok = (requestId: string): EnqueueJobsResult =>
  create(EnqueueJobsResultSchema, {
    requestId,
    created: true,
    outcome: { case: "job", value: { jobId: `job-${requestId}` } },
  });
const failed = (requestId: string, code: Code): EnqueueJobsResult =>
  create(EnqueueJobsResultSchema, {
    requestId,
    outcome: { case: "error", value: { code, message: Code[code] } },
  });

function recordingSleep() {
  const waits: number[] = [];
  return { waits, sleep: (ms: number) => (waits.push(ms), Promise.resolve()) };
}

Deno.test("a chunk whose call is unavailable is sent again, then its items get their outcomes", async () => {
  const { waits, sleep } = recordingSleep();
  let calls = 0;
  const outcomes = await enqueueChunk(jobs, (requests) => {
    calls++;
    if (calls === 1) return Promise.reject(new ConnectError("down", Code.Unavailable));
    return Promise.resolve(requests.map((r) => ok(r.requestId)));
  }, sleep);
  assert.equal(calls, 2);
  assert.equal(waits.length, 1);
  assert.ok(waits[0]! >= 125 && waits[0]! <= 250, `first wait ${waits[0]}`);
  assert.deepEqual(outcomes.map((o) => o.ok && o.jobId), ["job-r1", "job-r2", "job-r3"]);
});

Deno.test("only the items answered unavailable or deadline_exceeded are sent again", async () => {
  const { waits, sleep } = recordingSleep();
  const sent: string[][] = [];
  const outcomes = await enqueueChunk(jobs, (requests) => {
    sent.push(requests.map((r) => r.requestId));
    if (sent.length === 1) {
      return Promise.resolve([
        failed("r1", Code.Unavailable),
        failed("r2", Code.Internal),
        failed("r3", Code.DeadlineExceeded),
      ]);
    }
    return Promise.resolve(requests.map((r) => ok(r.requestId)));
  }, sleep);
  assert.deepEqual(sent, [["r1", "r2", "r3"], ["r1", "r3"]]);
  assert.equal(waits.length, 1);
  assert.deepEqual(outcomes.map((o) => o.ok), [true, false, true]);
  assert.equal(outcomes[1]!.ok === false && outcomes[1]!.code, Code.Internal);
});

Deno.test("a chunk has ATTEMPTS_PER_CHUNK tries; the waits double; the last answer stands", async () => {
  const { waits, sleep } = recordingSleep();
  let calls = 0;
  const outcomes = await enqueueChunk(jobs.slice(0, 1), () => {
    calls++;
    return Promise.resolve([failed("r1", Code.Unavailable)]);
  }, sleep);
  assert.equal(calls, 4);
  assert.equal(waits.length, 3);
  waits.forEach((ms, i) => {
    const cap = 250 * 2 ** i;
    assert.ok(ms >= cap / 2 && ms <= cap, `wait ${i}: ${ms}`);
  });
  assert.equal(outcomes[0]!.ok === false && outcomes[0]!.code, Code.Unavailable);
});

Deno.test("a call failing otherwise, or on its last try, throws its error", async () => {
  const { sleep } = recordingSleep();
  let calls = 0;
  await assert.rejects(
    enqueueChunk(jobs, () => {
      calls++;
      return Promise.reject(new ConnectError("broken", Code.Internal));
    }, sleep),
    /broken/,
  );
  assert.equal(calls, 1);
  calls = 0;
  await assert.rejects(
    enqueueChunk(
      jobs,
      () => {
        calls++;
        return Promise.reject(new ConnectError("down", Code.Unavailable));
      },
      sleep,
      2,
    ),
    /down/,
  );
  assert.equal(calls, 2);
});
