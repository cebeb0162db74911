/**
 * The CLI's own HTTP/1.1 post: its parsing without a network, then against
 * a scripted TCP server on 127.0.0.1 that answers the way real servers and
 * broken ones do.
 */
import assert from "node:assert/strict";
import { concatBytes } from "../../src/bytes.ts";
import {
  bodyFraming,
  canPostDirectly,
  ChunkedDecoder,
  http1Post,
  HttpProtocolError,
  MAX_RESPONSE_HEAD_BYTES,
  parseResponseHead,
  requestHead,
} from "../../src/client/http_post.ts";

const text = (parts: Uint8Array[]) => new TextDecoder().decode(concatBytes(parts));
const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("a response head parses to its status and lower-cased headers; a repeated one is joined", () => {
  const head = parseResponseHead(
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-A: 1\r\nx-a: 2",
  );
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-type"), "application/json");
  assert.equal(head.headers.get("x-a"), "1, 2");
  assert.throws(() => parseResponseHead("SSH-2.0-OpenSSH"), HttpProtocolError);
  assert.throws(() => parseResponseHead("HTTP/1.1 200 OK\r\nno colon here"), HttpProtocolError);
});

Deno.test("a body is framed by chunked, else content-length, else the connection's end", () => {
  const framing = (headers: string) => bodyFraming(parseResponseHead(`HTTP/1.1 200 OK${headers}`));
  assert.deepEqual(framing("\r\ntransfer-encoding: chunked\r\ncontent-length: 9"), {
    kind: "chunked",
  });
  assert.deepEqual(framing("\r\ncontent-length: 12"), { kind: "length", bytes: 12 });
  assert.deepEqual(framing(""), { kind: "close" });
  assert.throws(() => framing("\r\ntransfer-encoding: gzip"), /not chunked/);
  assert.throws(() => framing("\r\ncontent-length: -1"), /content-length/);
});

Deno.test("a chunked body decodes the same fed whole or byte by byte, extensions and trailers included", () => {
  const wire = "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: t\r\n\r\n";
  const whole = new ChunkedDecoder();
  assert.equal(text(whole.push(bytes(wire))), "hello, world");
  assert.equal(whole.done, true);
  const slow = new ChunkedDecoder();
  const out: Uint8Array[] = [];
  for (const b of bytes(wire)) out.push(...slow.push(new Uint8Array([b])));
  assert.equal(text(out), "hello, world");
  assert.equal(slow.done, true);
  assert.throws(() => new ChunkedDecoder().push(bytes("zz\r\n")), /chunk size/);
  assert.throws(() => new ChunkedDecoder().push(bytes("2\r\nabX\r\n")), /not followed by CRLF/);
});

Deno.test("a header with a line break is refused before anything is sent", () => {
  assert.match(requestHead("/p", "h:1", { a: "b" }, 3), /^POST \/p HTTP\/1\.1\r\nhost: h:1\r\n/);
  assert.throws(() => requestHead("/p", "h", { a: "b\r\nx-evil: 1" }, 0), /line break/);
});

Deno.test("only plain http://, without a proxy setting or tracing, is posted directly", () => {
  const none = () => undefined;
  assert.equal(canPostDirectly("http://127.0.0.1:8080", none), true);
  assert.equal(canPostDirectly("https://127.0.0.1:8080", none), false);
  for (const name of ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]) {
    const env = (n: string) => n === name ? "http://proxy:3128" : undefined;
    assert.equal(canPostDirectly("http://127.0.0.1:8080", env), false, name);
  }
  assert.equal(
    canPostDirectly("http://127.0.0.1:8080", (n) => n === "HTTP_PROXY" ? "" : undefined),
    true,
  );
  // Traced: fetch carries the trace context to the server.
  const otel = (value: string) => (n: string) => n === "OTEL_DENO" ? value : undefined;
  assert.equal(canPostDirectly("http://h:1", otel("true")), false);
  assert.equal(canPostDirectly("http://h:1", otel("false")), true);
});

/**
 * A TCP server on 127.0.0.1 whose `answer` writes the raw response to each
 * request it reads (one request per read, as these small ones arrive).
 */
function scriptedServer(answer: (conn: Deno.Conn, request: string) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  const requests: string[] = [];
  const open = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      connections++;
      open.add(conn);
      void (async () => {
        const buffer = new Uint8Array(64 * 1024);
        try {
          for (;;) {
            const n = await conn.read(buffer);
            if (n === null) break;
            const request = new TextDecoder().decode(buffer.subarray(0, n));
            requests.push(request);
            await answer(conn, request);
          }
        } catch {
          // The test's client closed it.
        } finally {
          open.delete(conn);
          try {
            conn.close();
          } catch {
            // closed already by `answer`
          }
        }
      })();
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    get connections() {
      return connections;
    },
    requests,
    async close() {
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await serving.catch(() => {});
    },
  };
}

const write = (conn: Deno.Conn, s: string) => conn.write(bytes(s)).then(() => {});

async function readAll(body: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const part of body) parts.push(part);
  return text(parts);
}

const post = (url: string, body = "{}", signal = new AbortController().signal) =>
  http1Post(url)(
    "/job.v1.JobService/GetJob",
    { "content-type": "application/json" },
    bytes(body),
    signal,
  );

Deno.test("a finished answer's connection is reused by the next call; connection: close is not", async () => {
  let closeNext = false;
  const server = scriptedServer(async (conn) => {
    const close = closeNext ? "connection: close\r\n" : "";
    await write(
      conn,
      `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${close}content-length: 2\r\n\r\n{}`,
    );
    if (closeNext) conn.close();
  });
  try {
    const client = http1Post(server.url);
    const call = () =>
      client(
        "/p",
        { "content-type": "application/json" },
        bytes("{}"),
        new AbortController().signal,
      );
    const first = await call();
    assert.equal(first.status, 200);
    assert.equal(first.contentType, "application/json");
    assert.equal(await readAll(first.body), "{}");
    assert.equal(await readAll((await call()).body), "{}");
    assert.equal(server.connections, 1, "the second call went on the first's connection");
    assert.match(server.requests[0]!, /^POST \/p HTTP\/1\.1\r\n/);
    assert.match(server.requests[0]!, /\r\ncontent-length: 2\r\n/);
    closeNext = true;
    assert.equal(await readAll((await call()).body), "{}");
    closeNext = false;
    assert.equal(await readAll((await call()).body), "{}");
    assert.equal(server.connections, 2, "after connection: close, a new connection");
  } finally {
    await server.close();
  }
});

Deno.test("a chunked answer that arrives a few bytes at a time is read whole", async () => {
  const server = scriptedServer(async (conn) => {
    const wire =
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
    for (let i = 0; i < wire.length; i += 3) {
      await write(conn, wire.slice(i, i + 3));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  });
  try {
    assert.equal(await readAll((await post(server.url)).body), "abcdefg");
  } finally {
    await server.close();
  }
});

Deno.test("an answer without a length ends with its connection", async () => {
  const server = scriptedServer(async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\n\r\nall of it");
    conn.close();
  });
  try {
    assert.equal(await readAll((await post(server.url)).body), "all of it");
  } finally {
    await server.close();
  }
});

Deno.test("a connection cut inside a body, or before any answer, is an error, not a short answer", async () => {
  const cutBody = scriptedServer(async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab");
    conn.close();
  });
  const cutLength = scriptedServer(async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc");
    conn.close();
  });
  const silent = scriptedServer((conn) => Promise.resolve(conn.close()));
  try {
    await assert.rejects(readAll((await post(cutBody.url)).body), Deno.errors.UnexpectedEof);
    await assert.rejects(readAll((await post(cutLength.url)).body), Deno.errors.UnexpectedEof);
    await assert.rejects(post(silent.url), Deno.errors.UnexpectedEof);
  } finally {
    await Promise.all([cutBody.close(), cutLength.close(), silent.close()]);
  }
});

Deno.test("a response head past the limit is refused", async () => {
  const server = scriptedServer(async (conn) => {
    await write(conn, `HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(MAX_RESPONSE_HEAD_BYTES)}\r\n\r\n`);
  });
  try {
    await assert.rejects(post(server.url), /larger than 65536 bytes/);
  } finally {
    await server.close();
  }
});

Deno.test("an abort ends a call that waits for its answer, with the abort's reason", async () => {
  const server = scriptedServer(() => new Promise(() => {})); // never answers
  try {
    const controller = new AbortController();
    const pending = post(server.url, "{}", controller.signal);
    setTimeout(() => controller.abort(new Error("stopped by the test")), 50);
    await assert.rejects(pending, /stopped by the test/);
  } finally {
    await server.close();
  }
});

Deno.test("calls at the same time on one client each get their own connection and answer", async () => {
  const server = scriptedServer(async (conn, request) => {
    const path = /^POST (\S+)/.exec(request)![1]!;
    if (path === "/slow") await new Promise((resolve) => setTimeout(resolve, 50));
    await write(conn, `HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\n\r\n${path}`);
  });
  try {
    const client = http1Post(server.url);
    const call = (path: string) =>
      client(path, {}, bytes(""), new AbortController().signal).then((r) => readAll(r.body));
    assert.deepEqual(await Promise.all([call("/slow"), call("/fast")]), ["/slow", "/fast"]);
    assert.equal(server.connections, 2);
  } finally {
    await server.close();
  }
});

Deno.test("an abort right after the call, or while the body is read, ends it with the abort's reason", async () => {
  const silent = scriptedServer(() => new Promise(() => {}));
  const slowBody = scriptedServer(async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n");
  });
  try {
    const early = new AbortController();
    const pending = post(silent.url, "{}", early.signal);
    early.abort(new Error("stopped at once")); // while it connects
    await assert.rejects(pending, /stopped at once/);

    const late = new AbortController();
    const reply = await post(slowBody.url, "{}", late.signal);
    const reading = readAll(reply.body);
    setTimeout(() => late.abort(new Error("stopped mid-body")), 50);
    await assert.rejects(reading, /stopped mid-body/);
  } finally {
    await Promise.all([silent.close(), slowBody.close()]);
  }
});

Deno.test("an idle connection the server closed is replaced, once, for the next call", async () => {
  const server = scriptedServer(async (conn) => {
    // Keep-alive by the headers, but the connection is closed after each answer.
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    conn.close();
  });
  try {
    const client = http1Post(server.url);
    const call = () =>
      client("/p", {}, bytes(""), new AbortController().signal).then((r) => readAll(r.body));
    assert.equal(await call(), "ok");
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(await call(), "ok", "the closed idle connection was not the call's end");
    assert.equal(server.connections, 2);
  } finally {
    await server.close();
  }
});

Deno.test("bytes past a body's end keep its connection from being reused", async () => {
  const server = scriptedServer(async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA");
  });
  try {
    const client = http1Post(server.url);
    const call = () =>
      client("/p", {}, bytes(""), new AbortController().signal).then((r) => readAll(r.body));
    assert.equal(await call(), "ok");
    assert.equal(await call(), "ok");
    assert.equal(server.connections, 2);
  } finally {
    await server.close();
  }
});
