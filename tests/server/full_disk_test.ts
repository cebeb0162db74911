/**
 * A full disk under a running server, for real: the sqlite store's data dir
 * is on a 4 MiB tmpfs that the test fills with a filler file. Writes are
 * refused as resource_exhausted naming the data dir (not internal), told
 * once in the log; reads go on; deleting the filler lets the next write
 * through, without a restart.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { JobParamsSchema, JobResultSchema, JobState } from "../../gen/job/v1/job_pb.ts";
import { logDiskNotice } from "../../src/cli/store_opener.ts";
import { createAirunnerClients } from "../../src/protocol/transport.ts";
import { startServer } from "../../src/server/http_server.ts";
import { defaultExecutionConfig } from "../../src/server/execution_config.ts";
import { openDataDirStore } from "../../src/store/data_dir.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import { StoreFullError } from "../../src/store/errors.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { memoryLog } from "../support/memory_log.ts";
import { mountTmpfs, tmpfsUnavailable } from "../support/tmpfs.ts";

const noTmpfs = await tmpfsUnavailable();
if (noTmpfs !== undefined) console.warn(`full-disk tests skipped: ${noTmpfs}`);

/** 16 KiB of environment per job, so a few dozen jobs fill what the filler leaves. */
const PADDED = { command: "true", environment: { PAD: "x".repeat(16 * 1024) } };

Deno.test({
  name:
    "a full disk: writes are resource_exhausted naming the data dir, reads go on, freeing space lets writes through",
  ignore: noTmpfs !== undefined,
  async fn() {
    await using disk = await mountTmpfs(4 * 1024 * 1024);
    const dataDir = join(disk.dir, "data");
    const log = memoryLog();
    const clock = new FakeClock();
    const store = await openDataDirStore(dataDir, {
      clock,
      env: () => undefined,
      onDiskNotice: (notice) => logDiskNotice(log.logger, notice),
    });
    const server = await startServer({
      store,
      logger: log.logger,
      hostname: "127.0.0.1",
      port: 0,
    });
    try {
      const { jobs, events } = createAirunnerClients({ serverUrl: server.url });
      // Before the disk fills: a finished job with events, and a running one.
      const finished = (await jobs.enqueueJob({ queue: "default", jobParams: { command: "echo" } }))
        .jobId;
      const running = (await jobs.enqueueJob({ queue: "default", jobParams: { command: "sleep" } }))
        .jobId;
      const [first] = await store.dequeue("default", {
        maxJobs: 1,
        visibilityTimeoutMs: 60_000,
        signal: AbortSignal.timeout(1_000),
      });
      await store.publishEvents(first!.taskToken, [
        makeEvent(1n, clock.now(), {
          case: "processStart",
          value: { $typeName: "job.v1.ProcessStartEvent", pid: 7 },
        }),
      ]);
      await store.complete(
        first!.taskToken,
        create(JobResultSchema, { jobId: finished, success: true }),
      );
      const [lapsing] = await store.dequeue("default", {
        maxJobs: 1,
        visibilityTimeoutMs: 1_000,
        signal: AbortSignal.timeout(1_000),
      });
      assert.equal(lapsing!.job.jobId, running);

      await disk.fill(256 * 1024);
      let refusal: ConnectError | undefined;
      let accepted = 0;
      for (let i = 0; i < 400 && refusal === undefined; i++) {
        try {
          await jobs.enqueueJob({ queue: "default", jobParams: PADDED });
          accepted++;
        } catch (error) {
          refusal = ConnectError.from(error);
        }
      }
      assert.ok(refusal !== undefined, `the disk filled (${accepted} jobs went in first)`);
      assert.equal(Code[refusal.code], Code[Code.ResourceExhausted]);
      assert.equal(refusal.rawMessage, `no space left for the job store in ${dataDir}`);

      // A flood of writes: each refused the same way, one log line in all.
      for (let i = 0; i < 30; i++) {
        await assert.rejects(
          jobs.enqueueJob({ queue: "default", jobParams: PADDED }),
          (error: unknown) => ConnectError.from(error).code === Code.ResourceExhausted,
        );
      }
      // A batch is refused as a whole (SQLite may have rolled all of it back).
      await assert.rejects(
        store.enqueueBatch(
          Array.from({ length: 3 }, () => ({
            requestId: "",
            queue: "default",
            params: create(JobParamsSchema, PADDED),
            executionConfig: defaultExecutionConfig(),
          })),
        ),
        StoreFullError,
      );

      // Reads: the job, the listing, the event log; a lease that ran out
      // while the disk refuses writes does not stop reads either.
      await clock.advance(5_000);
      assert.equal((await jobs.getJob({ jobId: finished })).job?.state, JobState.COMPLETED);
      assert.ok([JobState.RUNNING, JobState.SCHEDULED].includes(
        (await jobs.getJob({ jobId: running })).job!.state,
      ));
      const page = await jobs.listJobs({ queue: "default", pageSize: 1000 });
      assert.equal(page.jobs.length, 2 + accepted);
      const replayed = [];
      for await (
        const message of events.streamJobEvents({ jobId: finished }, {
          signal: AbortSignal.timeout(5_000),
        })
      ) {
        replayed.push(message.event?.sequence);
      }
      assert.ok(replayed.length >= 1 && replayed[0] === 1n, `replayed ${replayed}`);

      await disk.free();
      const after = await jobs.enqueueJob({ queue: "default", jobParams: PADDED });
      assert.equal(after.state, JobState.SCHEDULED);
      assert.equal((await jobs.getJob({ jobId: running })).job?.state, JobState.SCHEDULED);

      const records = log.records();
      const refused = records.filter((r) => String(r.msg).startsWith("no space left"));
      assert.equal(refused.length, 1, JSON.stringify(refused));
      assert.match(JSON.stringify(refused[0]!.err), /database or disk is full|disk I\/O error/);
      assert.equal(records.filter((r) => String(r.msg).includes("takes writes again")).length, 1);
      const unexpected = records.filter((r) =>
        /unexpected|cannot rollback|internal/i.test(JSON.stringify(r))
      );
      assert.deepEqual(unexpected, []);
    } finally {
      await server.close();
      await store.close();
    }
  },
});
