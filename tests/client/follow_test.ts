import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { JobParamsSchema, JobResultSchema, JobState } from "../../gen/job/v1/job_pb.ts";
import { defaultExecutionConfig } from "../../src/server/execution_config.ts";
import { followJob } from "../../src/client/follow.ts";
import { type AirunnerClients, createAirunnerClients } from "../../src/protocol/transport.ts";
import { startServer } from "../../src/server/http_server.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { memoryLog } from "../support/memory_log.ts";

/** A finished job with events 1..5, on a real server. */
async function finishedJob() {
  const store = new MemoryJobStore();
  const server = await startServer({
    store,
    logger: memoryLog().logger,
    hostname: "127.0.0.1",
    port: 0,
  });
  const { job } = await store.enqueue({
    requestId: "",
    queue: "default",
    params: create(JobParamsSchema, { command: "x" }),
    executionConfig: defaultExecutionConfig(),
  });
  const [leased] = await store.dequeue("default", {
    maxJobs: 1,
    visibilityTimeoutMs: 60_000,
    signal: AbortSignal.timeout(1000),
  });
  const events = [1, 2, 3, 4, 5].map((n) =>
    makeEvent(BigInt(n), Date.now(), {
      case: "processError",
      value: { $typeName: "job.v1.ProcessErrorEvent", errorMessage: `e${n}` },
    })
  );
  await store.publishEvents(leased!.taskToken, events);
  await store.complete(
    leased!.taskToken,
    create(JobResultSchema, { jobId: job.jobId, success: false, exitCode: 4 }),
  );
  return {
    jobId: job.jobId,
    clients: createAirunnerClients({ serverUrl: server.url }),
    close: async () => {
      await server.close();
      await store.close();
    },
  };
}

/** Clients whose first event stream breaks after `after` events. */
function breakingOnce(clients: AirunnerClients, after: number): AirunnerClients {
  let broken = false;
  return {
    jobs: clients.jobs,
    events: {
      ...clients.events,
      streamJobEvents(req, options) {
        const inner = clients.events.streamJobEvents(req, options);
        if (broken) return inner;
        broken = true;
        return (async function* () {
          let n = 0;
          for await (const res of inner) {
            if (n++ === after) throw new ConnectError("connection reset", Code.Unavailable);
            yield res;
          }
        })();
      },
    },
  };
}

Deno.test("a stream broken mid-way is resumed with no event missed or repeated", async () => {
  const fixture = await finishedJob();
  try {
    const seen: bigint[] = [];
    const reconnects: string[] = [];
    const job = await followJob(breakingOnce(fixture.clients, 2), fixture.jobId, {
      onEvent: (e) => void seen.push(e.sequence),
      onReconnect: (e) => reconnects.push(e.rawMessage),
    });
    assert.deepEqual(seen, [1n, 2n, 3n, 4n, 5n]);
    assert.deepEqual(reconnects, ["connection reset"]);
    assert.equal(job.state, JobState.FAILED);
    assert.equal(job.result?.exitCode, 4);
  } finally {
    await fixture.close();
  }
});

Deno.test("a server that cannot be reached fails the follow at once", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const started = Date.now();
  await assert.rejects(
    followJob(
      createAirunnerClients({ serverUrl: `http://127.0.0.1:${port}` }),
      "01890a5d-ac96-774b-bcce-b302099a8057",
      { onEvent: () => {} },
    ),
    ConnectError,
  );
  assert.ok(Date.now() - started < 2000);
});

Deno.test("an error of the event handler ends the follow without retries", async () => {
  const fixture = await finishedJob();
  try {
    let calls = 0;
    await assert.rejects(
      followJob(fixture.clients, fixture.jobId, {
        onEvent: () => {
          calls++;
          throw new Deno.errors.BrokenPipe("reader went away");
        },
      }),
      Deno.errors.BrokenPipe,
    );
    assert.equal(calls, 1);
  } finally {
    await fixture.close();
  }
});
