/**
 * Issue 18, hole 4: 200 connections that each declare an 8 MiB body and
 * send one byte, against a server in its own process (its RSS read from
 * /proc). Before, the server allocated each declared body up front (200
 * connections: +1.6 GiB) and waited for it forever.
 */
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { EnqueueJobRequestSchema } from "../../gen/job/v1/job_pb.ts";
import { startEdgeServer } from "../support/edge_server.ts";
import { postHead, RawConnection } from "../support/raw_http.ts";

const CONNECTIONS = 200;
const DECLARED_BYTES = 8 * 1024 * 1024;
const BODY_IDLE_TIMEOUT_MS = 2000;
const RSS_BUDGET_MIB = 64;

for (const auth of [false, true]) {
  Deno.test(`${CONNECTIONS} connections declaring 8 MiB and sending 1 byte cost < ${RSS_BUDGET_MIB} MiB and are answered by the timeout (auth ${auth ? "on, no token" : "off"})`, async () => {
    await using server = await startEdgeServer({ bodyIdleTimeoutMs: BODY_IDLE_TIMEOUT_MS, auth });
    const authorization = { authorization: `Bearer ${server.token}` };
    const enqueue = () =>
      fetch(`${server.url}/job.v1.JobService/EnqueueJob`, {
        method: "POST",
        headers: { "content-type": "application/proto", ...(auth ? authorization : {}) },
        body: toBinary(
          EnqueueJobRequestSchema,
          create(EnqueueJobRequestSchema, { queue: "real", jobParams: { command: "true" } }),
        ),
      });
    // Warm up what a first call allocates, so the baseline is a serving server's.
    assert.equal((await enqueue().then(async (r) => (await r.body?.cancel(), r))).status, 200);
    const baseline = server.rssMiB();

    const connections: RawConnection[] = [];
    try {
      for (let i = 0; i < CONNECTIONS; i++) {
        const conn = await RawConnection.open(server.port);
        connections.push(conn);
        await conn.send(postHead("/job.v1.JobService/ListJobs", {
          "content-type": "application/proto",
          "content-length": DECLARED_BYTES,
        }));
        await conn.send("\n");
      }
      // Meanwhile the server answers health checks and real calls.
      const health = await fetch(`${server.url}/health`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
      const real = await enqueue();
      assert.equal(real.status, 200, "a real call is served while the slow bodies wait");
      await real.body?.cancel();
      const loaded = server.rssMiB();
      assert.ok(
        loaded - baseline < RSS_BUDGET_MIB,
        `RSS went from ${baseline.toFixed(1)} to ${loaded.toFixed(1)} MiB`,
      );

      // Every slow body gets its answer: Unauthenticated at once without a
      // token, DeadlineExceeded once the idle timeout passed without one.
      const answers = await Promise.all(connections.map((c) => c.answer(BODY_IDLE_TIMEOUT_MS * 5)));
      const expected = auth ? /"code":"unauthenticated"/ : /"code":"deadline_exceeded"/;
      const unanswered = answers.filter((a) => a === undefined || !expected.test(a.body));
      assert.equal(
        unanswered.length,
        0,
        `${unanswered.length} of ${CONNECTIONS} were not answered`,
      );
      const answered = server.rssMiB();
      assert.ok(
        answered - baseline < RSS_BUDGET_MIB,
        `after the answers RSS is ${answered.toFixed(1)} MiB (from ${baseline.toFixed(1)})`,
      );
      console.log(
        `RSS: ${baseline.toFixed(1)} MiB serving, ${loaded.toFixed(1)} MiB with ${CONNECTIONS} ` +
          `slow bodies, ${answered.toFixed(1)} MiB once they were answered`,
      );
    } finally {
      for (const conn of connections) await conn.close();
    }
    const log = await server.stop();
    assert.doesNotMatch(log, /"level":(50|60)/, "no error was logged");
  });
}
