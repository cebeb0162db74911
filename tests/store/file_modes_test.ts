/**
 * Files that hold job data are the owner's alone: the database and its
 * -wal and -shm files, the lock and token secret beside them, backups
 * (`airunner backup`, a real process) and the worker's spill files are
 * 0600, the data dir airunner creates 0700; a database left with looser
 * modes is tightened at open, and the log says so. The first test sets the
 * usual umask 022, under which SQLite's own default would be 0644.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { JobParamsSchema } from "../../gen/job/v1/job_pb.ts";
import { defaultExecutionConfig } from "../../src/server/execution_config.ts";
import { openDataDirStore } from "../../src/store/data_dir.ts";
import type { DiskNotice } from "../../src/store/disk_errors.ts";
import { makeEvent } from "../../src/protocol/event_sequencing.ts";
import type { JobStore } from "../../src/store/job_store.ts";
import { EventSequencer, processErrorEvent } from "../../src/worker/job_events.ts";
import { SpillQueue } from "../../src/worker/spill_queue.ts";
import { SqliteJobStore } from "../../src/store/sqlite/sqlite_store.ts";
import { TaskTokenCodec } from "../../src/store/task_token.ts";
import { runAirunner } from "../support/airunner_process.ts";
import { memoryLog } from "../support/memory_log.ts";
import { logDiskNotice } from "../../src/cli/store_opener.ts";

const modeOf = (path: string) => (Deno.statSync(path).mode! & 0o777).toString(8).padStart(4, "0");

/** A job with an environment and output, as real jobs have: what the modes protect. */
async function storeAJob(store: JobStore): Promise<void> {
  await store.enqueue({
    requestId: "",
    queue: "default",
    params: create(JobParamsSchema, { command: "env", environment: { API_KEY: "hunter2" } }),
    executionConfig: defaultExecutionConfig(),
  });
  const [leased] = await store.dequeue("default", {
    maxJobs: 1,
    visibilityTimeoutMs: 60_000,
    signal: AbortSignal.timeout(1_000),
  });
  await store.publishEvents(leased!.taskToken, [
    makeEvent(1n, Date.now(), {
      case: "processStart",
      value: { $typeName: "job.v1.ProcessStartEvent", pid: 1 },
    }),
  ]);
}

Deno.test({
  name:
    "the data dir is 0700 and the database, its -wal and -shm, lock, secret and backup are 0600",
  ignore: Deno.build.os === "windows",
  async fn() {
    const scratch = await Deno.makeTempDir({ prefix: "airunner-modes-" });
    // The usual umask (the backup process inherits it), whatever the runner's is.
    const umask = Deno.umask(0o022);
    try {
      const dataDir = join(scratch, "data");
      const store = await openDataDirStore(dataDir, { env: () => undefined });
      try {
        await storeAJob(store);
        assert.equal(modeOf(dataDir), "0700");
        for (
          const name of [
            "airunner.db",
            "airunner.db-wal",
            "airunner.db-shm",
            "airunner.lock",
            "token-secret",
          ]
        ) {
          assert.equal(modeOf(join(dataDir, name)), "0600", name);
        }
        // Taken while the server runs, by the real command.
        const out = join(scratch, "copy.db");
        const backup = await runAirunner(["backup", "--data-dir", dataDir, "--out", out]);
        assert.equal(backup.code, 0, backup.stderr);
        assert.equal(modeOf(out), "0600", "the backup");
        const again = await runAirunner(["backup", "--data-dir", dataDir, "--out", out]);
        assert.equal(again.code, 1);
        assert.match(again.stderr, /exists already/);
      } finally {
        await store.close();
      }
    } finally {
      Deno.umask(umask);
      await Deno.remove(scratch, { recursive: true });
    }
  },
});

Deno.test({
  name: "a database with looser modes is made 0600 at open, and the log says which files were",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "airunner-modes-" });
    try {
      const db = join(dataDir, "airunner.db");
      const first = await openDataDirStore(dataDir, { env: () => undefined });
      await storeAJob(first);
      // As an older airunner left it: SQLite's default 0644, wal included
      // (a server killed before it could checkpoint).
      Deno.chmodSync(db, 0o644);
      Deno.chmodSync(`${db}-wal`, 0o644);
      const notices: DiskNotice[] = [];
      // Opened beside the first (which holds the data dir's lock), so its wal is still there.
      const second = SqliteJobStore.open({
        path: db,
        tokenCodec: new TaskTokenCodec(new Uint8Array(32)),
        onDiskNotice: (notice) => notices.push(notice),
      });
      assert.equal(modeOf(db), "0600");
      assert.equal(modeOf(`${db}-wal`), "0600");
      await second.close();
      await first.close();
      assert.deepEqual(notices, [{
        kind: "modes_tightened",
        files: [{ path: db, fromMode: 0o644 }, { path: `${db}-wal`, fromMode: 0o644 }],
      }]);
      const log = memoryLog();
      for (const notice of notices) logDiskNotice(log.logger, notice);
      assert.deepEqual(log.records().map((r) => r.msg), [
        `${db} was mode 0644: made it 0600, since it holds job environments and output`,
        `${db}-wal was mode 0644: made it 0600, since it holds job environments and output`,
      ]);
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a worker's spill file of job output is 0600 in a 0700 directory",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "airunner-modes-" });
    const path = join(dir, "workspaces", "events-job-1.spill");
    const queue = new SpillQueue({ memoryLimitBytes: 100, fileLimitBytes: 1_000_000, path });
    try {
      const sequencer = new EventSequencer();
      for (let i = 0; i < 10; i++) {
        await queue.push(processErrorEvent(sequencer, "output ".repeat(20), 0), 150);
      }
      assert.equal(modeOf(path), "0600");
      assert.equal(modeOf(join(dir, "workspaces")), "0700");
    } finally {
      await queue.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
