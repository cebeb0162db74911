import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type GetJobResponse,
  GetJobResponseSchema,
  JobState,
  type StreamJobEventsResponse,
} from "../../gen/job/v1/job_pb.ts";
import { followJob } from "../../src/client/follow.ts";
import type { AirunnerClients } from "../../src/protocol/transport.ts";
import { FakeClock, settle } from "../support/fake_clock.ts";

/**
 * Clients whose GetJob answers `states` in turn (the last one from then on)
 * and calls `onGetJob`, and whose streams run `stream`.
 */
function fakeClients(
  states: JobState[],
  stream: () => AsyncIterable<StreamJobEventsResponse>,
  onGetJob: () => void = () => {},
): AirunnerClients {
  const answer = (): GetJobResponse =>
    create(GetJobResponseSchema, {
      job: { jobId: "j", state: states.length > 1 ? states.shift()! : states[0]! },
    });
  return {
    jobs: {
      getJob: () => {
        onGetJob();
        return Promise.resolve(answer());
      },
    },
    events: { streamJobEvents: stream },
  } as unknown as AirunnerClients;
}

/** A stream whose connection is cut before its first event. */
async function* cutStream(): AsyncIterable<StreamJobEventsResponse> {
  yield* [];
  throw new ConnectError("connection reset", Code.Unavailable);
}

Deno.test("a stream that ends before its job is resumed after a growing pause", async () => {
  const clock = new FakeClock();
  let streams = 0;
  const clients = fakeClients(
    [JobState.RUNNING, JobState.RUNNING, JobState.RUNNING, JobState.COMPLETED],
    () => {
      streams++;
      return (async function* () {})();
    },
  );
  const following = followJob(clients, "j", { onEvent: () => {}, clock });
  await settle();
  assert.equal(streams, 1);
  await clock.advance(100); // first pause: 50-100 ms
  assert.equal(streams, 2);
  await clock.advance(199);
  await clock.advance(1); // second pause: 100-200 ms
  assert.equal(streams, 3);
  const job = await following;
  assert.equal(job.state, JobState.COMPLETED);
});

Deno.test("an abort while waiting to reconnect ends the follow with a ConnectError", async () => {
  const clock = new FakeClock();
  const stop = new AbortController();
  const reconnects: string[] = [];
  const clients = fakeClients([JobState.RUNNING], cutStream);
  const following = followJob(clients, "j", {
    onEvent: () => {},
    onReconnect: (e) => reconnects.push(e.rawMessage),
    clock,
    signal: stop.signal,
  });
  await settle();
  assert.deepEqual(reconnects, ["connection reset"]);
  stop.abort();
  await assert.rejects(following, ConnectError);
});

Deno.test("a follow gives up once the server stayed away longer than maxOutageMs", async () => {
  const clock = new FakeClock();
  let streams = 0;
  const clients = fakeClients([JobState.RUNNING], () => {
    streams++;
    return cutStream();
  });
  const following = followJob(clients, "j", { onEvent: () => {}, clock, maxOutageMs: 1_000 });
  const outcome = following.then(() => "finished", (e: unknown) => e);
  for (let i = 0; i < 20; i++) await clock.advance(200);
  const error = await outcome;
  assert.ok(error instanceof ConnectError && error.code === Code.Unavailable, String(error));
  assert.ok(streams > 2 && streams < 20, `${streams} streams`);
});

Deno.test("deadline_exceeded ends a follow at once", async () => {
  const clients = fakeClients([JobState.RUNNING], () =>
    (async function* () {
      yield* [];
      throw new ConnectError("too slow", Code.DeadlineExceeded);
    })());
  await assert.rejects(
    followJob(clients, "j", { onEvent: () => {}, clock: new FakeClock() }),
    /too slow/,
  );
});

Deno.test("a follow of a job the caller just enqueued opens the stream without asking for the job first", async () => {
  const clock = new FakeClock();
  const calls: string[] = [];
  const clients = fakeClients(
    [JobState.COMPLETED],
    () => {
      calls.push("stream");
      return (async function* () {})();
    },
    () => calls.push("getJob"),
  );
  const job = await followJob(clients, "j", { onEvent: () => {}, clock, jobKnownToExist: true });
  assert.equal(job.state, JobState.COMPLETED);
  assert.deepEqual(calls, ["stream", "getJob"]);
  calls.length = 0;
  await followJob(clients, "j", { onEvent: () => {}, clock });
  assert.deepEqual(calls, ["getJob", "stream", "getJob"]);
});

Deno.test("a follow of a job the caller just enqueued waits out a server that went away", async () => {
  const clock = new FakeClock();
  let streams = 0;
  const clients = fakeClients(
    [JobState.COMPLETED],
    () => ++streams === 1 ? cutStream() : (async function* () {})(),
  );
  const following = followJob(clients, "j", { onEvent: () => {}, clock, jobKnownToExist: true });
  await settle();
  assert.equal(streams, 1);
  await clock.advance(100);
  assert.equal((await following).state, JobState.COMPLETED);
  assert.equal(streams, 2);
});
