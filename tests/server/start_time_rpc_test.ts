/**
 * Delayed starts and priorities over a real server: every field out of its
 * range is invalid_argument naming it, on EnqueueJob and on an item of
 * EnqueueJobs (which is then refused whole), and nothing is enqueued.
 */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { withMemoryServer } from "../support/memory_server.ts";

const BAD: [string, Record<string, unknown>, RegExp][] = [
  ["job_params.priority", { priority: 500 }, /is 500, outside -100..100/],
  ["job_params.delay_ms", { delayMs: -1n }, /outside 0..31622400000/],
  ["job_params.delay_ms", { delayMs: 367n * 86_400_000n }, /outside 0..31622400000/],
  ["job_params.run_at", { delayMs: 5n, runAt: timestampFromMs(Date.now() + 60_000) }, /both set/],
  ["job_params.run_at", { runAt: { seconds: 1_900_000_000n, nanos: -1 } }, /nanos -1/],
  [
    "job_params.run_at",
    { runAt: timestampFromMs(Date.now() + 400 * 86_400_000) },
    /366 days ahead/,
  ],
  [
    "job_params.run_at",
    { runAt: timestampFromMs(Date.now() - 3_600_000) },
    /more than a minute in the past/,
  ],
];

Deno.test("EnqueueJob refuses a start time or priority out of range, naming the field", async () => {
  await withMemoryServer(async (url) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    for (const [field, fields, pattern] of BAD) {
      await assert.rejects(
        jobs.enqueueJob({ queue: "default", jobParams: { command: "true", ...fields } }),
        (error: unknown) => {
          const e = ConnectError.from(error);
          assert.equal(Code[e.code], Code[Code.InvalidArgument], e.message);
          assert.ok(e.rawMessage.startsWith(`${field}: `), e.rawMessage);
          assert.match(e.rawMessage, pattern);
          return true;
        },
      );
    }
    assert.deepEqual((await jobs.listJobs({})).jobs, [], "nothing was enqueued");
  });
});

Deno.test("EnqueueJobs with one item out of range is refused whole, naming the item, and enqueues nothing", async () => {
  await withMemoryServer(async (url) => {
    const { jobs } = createAirunnerClients({ serverUrl: url });
    await assert.rejects(
      jobs.enqueueJobs({
        jobs: [
          { queue: "default", jobParams: { command: "true", priority: 5 } },
          { queue: "default", jobParams: { command: "true", priority: -101 } },
        ],
      }),
      (error: unknown) => {
        const e = ConnectError.from(error);
        assert.equal(Code[e.code], Code[Code.InvalidArgument]);
        assert.match(
          e.rawMessage,
          /^jobs\[1\]\.job_params\.priority: is -101, outside -100\.\.100/,
        );
        return true;
      },
    );
    assert.deepEqual((await jobs.listJobs({})).jobs, []);
  });
});
