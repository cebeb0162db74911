import assert from "node:assert/strict";
import { startServer } from "../../src/server/http_server.ts";
import { MemoryJobStore } from "../../src/store/memory_store.ts";
import { memoryLog } from "../support/memory_log.ts";

/** Bytes that are not a protobuf message: a field tag with wire type 7. */
const GARBAGE = new Uint8Array([0x0f, 0xff, 0x01]);

function envelope(data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + data.byteLength);
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

Deno.test("a request whose protobuf does not parse is InvalidArgument, unary and streaming", async () => {
  const store = new MemoryJobStore();
  await using server = await startServer({
    store,
    logger: memoryLog().logger,
    hostname: "127.0.0.1",
    port: 0,
  });
  try {
    const unary = await fetch(`${server.url}/job.v1.JobService/EnqueueJob`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: GARBAGE,
    });
    assert.equal(unary.status, 400);
    const error = await unary.json();
    assert.equal(error.code, "invalid_argument");
    assert.match(error.message, /^malformed request message: /);

    const stream = await fetch(`${server.url}/job.v1.JobEventsService/StreamJobEvents`, {
      method: "POST",
      headers: { "content-type": "application/connect+proto" },
      body: envelope(GARBAGE),
    });
    assert.equal(stream.status, 200);
    const bytes = new Uint8Array(await stream.arrayBuffer());
    assert.equal(bytes[0], 0b10, "one end-of-stream frame");
    const end = JSON.parse(new TextDecoder().decode(bytes.subarray(5)));
    assert.equal(end.error.code, "invalid_argument");
    assert.match(end.error.message, /^malformed request message: /);
    assert.deepEqual((await store.listJobs({ page: 1, pageSize: 10 })).jobs, []);
  } finally {
    await store.close();
  }
});
