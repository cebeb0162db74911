/**
 * Fuzzing the running server: 10,000+ random and mutated requests to every
 * RPC of a real `airunner server` process: valid protobuf shapes with
 * extreme values, mutated and truncated messages, random bytes, wrong
 * content types, lying stream envelopes and oversized bodies. The server
 * must answer each with a proper response (never Internal, never a dropped
 * connection), stay up, log no unexpected error, and still run a job.
 *
 * Then what a client can only do below fetch, over raw connections to a
 * server process with a 1 s body timeout: bodies shorter than they say,
 * slow and silent bodies, slow and never-ending headers, JSON nested past
 * the limit, tokens in the query string.
 *
 * The run is reproducible: FUZZ_SEED=<n> replays the sequence a failure
 * names.
 */
import assert from "node:assert/strict";
import {
  create,
  type DescField,
  type DescMessage,
  ScalarType,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import { JobEventsService, JobService } from "../../gen/job/v1/job_pb.ts";
import { concatBytes } from "../../src/bytes.ts";
import {
  freePort,
  runAirunner,
  startAirunner,
  waitForHealth,
} from "../support/airunner_process.ts";
import { startEdgeServer } from "../support/edge_server.ts";
import { postHead, type RawAnswer, RawConnection } from "../support/raw_http.ts";

const REQUESTS = 10_000;
const CONCURRENCY = 16;
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
class Random {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(length: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }
}

interface Procedure {
  readonly path: string;
  readonly input: DescMessage;
  readonly streamingRequest: boolean;
  readonly streamingResponse: boolean;
}

const PROCEDURES: Procedure[] = [JobService, JobEventsService].flatMap((service) =>
  service.methods.map((method) => ({
    path: `/${service.typeName}/${method.name}`,
    input: method.input,
    streamingRequest: method.methodKind === "client_streaming" ||
      method.methodKind === "bidi_streaming",
    streamingResponse: method.methodKind === "server_streaming" ||
      method.methodKind === "bidi_streaming",
  }))
);

const INT32_EXTREMES = [0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 300, 43_200, 43_201, 1_000, 1_001];
const INT64_EXTREMES = [0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n];

function randomString(rng: Random): string {
  switch (rng.int(10)) {
    case 0:
      return "";
    case 1:
      return "default";
    case 2:
      return crypto.randomUUID();
    case 3:
      return "x".repeat(rng.pick([64, 65, 256, 257, 2048, 2049, 4097, 70_000]));
    case 4:
      return "../../etc/passwd\0";
    case 5:
      return "\u{1F600}\uD800ünï\u0000code\n\r\t";
    case 6:
      return "a/b c=d";
    case 7:
      return "v1.e30.AAAA";
    default:
      return String.fromCharCode(...Array.from({ length: rng.int(40) }, () => rng.int(0xd7ff)));
  }
}

function randomScalar(rng: Random, type: ScalarType): unknown {
  switch (type) {
    case ScalarType.STRING:
      return randomString(rng);
    case ScalarType.BYTES:
      return rng.bytes(rng.int(64));
    case ScalarType.BOOL:
      return rng.chance(0.5);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return rng.pick([0, -0, NaN, Infinity, -Infinity, 1e308, 3.5]);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return rng.pick(INT64_EXTREMES);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return rng.pick([0n, 1n, 2n ** 64n - 1n, 2n ** 63n]);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return rng.pick([0, 1, 2 ** 32 - 1, 2 ** 31]);
    default:
      return rng.pick(INT32_EXTREMES);
  }
}

function randomEnum(rng: Random, field: DescField & { enum: { values: { number: number }[] } }) {
  return rng.chance(0.8) ? rng.pick(field.enum.values).number : rng.pick([-1, 99, 2 ** 31 - 1]);
}

/** A value of one element of `field`: the field itself, or an item of its list. */
function randomElement(
  rng: Random,
  field: DescField,
  kind: "scalar" | "enum" | "message",
  depth: number,
  budget: ShapeBudget,
): unknown {
  switch (kind) {
    case "scalar":
      return randomScalar(rng, (field as { scalar: ScalarType }).scalar);
    case "enum":
      return randomEnum(rng, field as Parameters<typeof randomEnum>[1]);
    case "message":
      return depth > 3
        ? {}
        : randomInit(rng, (field as { message: DescMessage }).message, depth + 1, budget);
  }
}

function randomValue(rng: Random, field: DescField, depth: number, budget: ShapeBudget): unknown {
  switch (field.fieldKind) {
    case "scalar":
    case "enum":
    case "message":
      return randomElement(rng, field, field.fieldKind, depth, budget);
    case "list": {
      const oversize = rng.chance(0.05) && budget.oversizedLists-- > 0;
      const length = oversize ? rng.pick([1025, 1001]) : rng.int(4);
      return Array.from({ length }, () => randomElement(rng, field, field.listKind, depth, budget));
    }
    case "map": {
      const entries = rng.chance(0.05) ? 257 : rng.int(4);
      return Object.fromEntries(
        Array.from({ length: entries }, (_, i) => [
          rng.chance(0.9) ? `K${i}` : randomString(rng),
          field.mapKind === "scalar" ? randomScalar(rng, field.scalar) : {},
        ]),
      );
    }
  }
}

/**
 * What one generated message may still spend: one list over a limit per
 * message, since lists nested in lists over the limit (a batch of 1,001 jobs
 * with 1,025 args each) would multiply into gigabytes.
 */
interface ShapeBudget {
  oversizedLists: number;
}

/** A message init of `desc` with random fields set, oneofs respected. */
function randomInit(
  rng: Random,
  desc: DescMessage,
  depth = 0,
  budget: ShapeBudget = { oversizedLists: 1 },
): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  for (const field of desc.fields) {
    if (rng.chance(0.3)) continue;
    const value = randomValue(rng, field, depth, budget);
    if (field.oneof === undefined) {
      init[field.localName] = value;
    } else if (init[field.oneof.localName] === undefined) {
      init[field.oneof.localName] = { case: field.localName, value };
    }
  }
  return init;
}

function envelope(flags: number, data: Uint8Array, declaredLength = data.byteLength) {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, declaredLength >>> 0);
  out.set(data, 5);
  return out;
}

function mutate(rng: Random, bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(bytes);
  switch (rng.int(4)) {
    case 0: // Flip some bytes.
      for (let i = 0; i < 1 + rng.int(4) && out.length > 0; i++) {
        out[rng.int(out.length)] = rng.int(256);
      }
      return out;
    case 1: // Truncate.
      return out.slice(0, rng.int(out.length + 1));
    case 2: // Append garbage.
      return concatBytes([out, rng.bytes(1 + rng.int(32))]);
    default: // A varint that never ends.
      return concatBytes([out, new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);
  }
}

interface FuzzRequest {
  readonly kind: string;
  readonly path: string;
  readonly contentType: string;
  readonly body: Uint8Array<ArrayBuffer>;
}

function validShape(rng: Random, procedure: Procedure): Uint8Array<ArrayBuffer> {
  try {
    return new Uint8Array(
      toBinary(procedure.input, create(procedure.input, randomInit(rng, procedure.input))),
    );
  } catch {
    return new Uint8Array();
  }
}

/** One request to `procedure`, of a randomly chosen kind. */
function fuzzRequest(rng: Random, procedure: Procedure, oversized: boolean): FuzzRequest {
  const streaming = procedure.streamingRequest || procedure.streamingResponse;
  const protoType = streaming ? "application/connect+proto" : "application/proto";
  const frame = (data: Uint8Array<ArrayBuffer>) => (streaming ? envelope(0, data) : data);
  const base = { path: procedure.path, contentType: protoType };
  if (oversized) {
    const body = new Uint8Array(9 * 1024 * 1024);
    return { ...base, kind: "oversized", body: streaming ? envelope(0, body) : body };
  }
  switch (rng.int(8)) {
    case 0:
    case 1:
      return { ...base, kind: "valid shape", body: frame(validShape(rng, procedure)) };
    case 2:
      return { ...base, kind: "mutated", body: frame(mutate(rng, validShape(rng, procedure))) };
    case 3:
      return { ...base, kind: "random bytes", body: rng.bytes(rng.int(2048)) };
    case 4: {
      let json = "{}";
      try {
        json = toJsonString(
          procedure.input,
          create(procedure.input, randomInit(rng, procedure.input)),
        );
      } catch { /* keep {} */ }
      if (rng.chance(0.3)) json = json.slice(0, rng.int(json.length));
      if (rng.chance(0.2)) json = rng.pick(["[]", "null", '{"queue":{}}', '{"pageSize":"1e999"}']);
      const data = new TextEncoder().encode(json);
      return {
        ...base,
        kind: "json",
        contentType: streaming ? "application/connect+json" : "application/json",
        body: streaming ? envelope(0, data) : data,
      };
    }
    case 5:
      return {
        ...base,
        kind: "wrong content type",
        contentType: rng.pick([
          "text/plain",
          "application/grpc",
          "application/grpc-web+proto",
          "application/xml",
          "",
          streaming ? "application/proto" : "application/connect+proto",
        ]),
        body: validShape(rng, procedure),
      };
    case 6: {
      // Stream envelopes that lie: a length longer than the data, huge, or odd flags.
      const data = validShape(rng, procedure);
      const lie = rng.pick([data.byteLength + 10, 0x7fffffff, 0xffffffff, 9 * 1024 * 1024]);
      const flags = rng.pick([0, 1, 2, 0x80]);
      return { ...base, kind: "lying envelope", body: envelope(flags, data, lie) };
    }
    default: {
      // Several messages on one stream, some broken, maybe an end-stream frame.
      const parts = Array.from(
        { length: 1 + rng.int(4) },
        () => envelope(0, rng.chance(0.7) ? validShape(rng, procedure) : rng.bytes(rng.int(64))),
      );
      if (rng.chance(0.5)) parts.push(envelope(2, new TextEncoder().encode("{}")));
      return { ...base, kind: "multi-message", body: concatBytes(parts) };
    }
  }
}

/** Why `status` + `text` is not a proper answer, or undefined when it is. */
function improperAnswer(status: number, text: string): string | undefined {
  if (status >= 500 && status !== 503 && status !== 504) return `HTTP ${status}`;
  if (/"code":\s*"(internal|unknown)"/.test(text)) return "an internal/unknown error";
  return undefined;
}

Deno.test(`the server survives ${REQUESTS} fuzzed requests to every RPC (seed ${SEED})`, async () => {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  await using server = startAirunner([
    "server",
    "--listen",
    `127.0.0.1:${port}`,
    "--store",
    "memory",
    "--no-auth",
    "--log-level",
    "error",
  ]);
  await waitForHealth(url);

  const rng = new Random(SEED);
  const plan = Array.from({ length: REQUESTS }, (_, i) => {
    const procedure = PROCEDURES[i % PROCEDURES.length]!;
    // Every procedure gets a few 9 MiB bodies; the rest are small.
    const oversized = i < PROCEDURES.length * 2;
    return fuzzRequest(rng, procedure, oversized);
  });

  const counts = new Map<string, number>();
  const failures: string[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < plan.length) {
      const index = next++;
      const request = plan[index]!;
      try {
        const headers: Record<string, string> = { "connect-timeout-ms": "200" };
        if (request.contentType !== "") headers["content-type"] = request.contentType;
        const response = await fetch(`${url}${request.path}`, {
          method: "POST",
          headers,
          body: request.body,
          signal: AbortSignal.timeout(15_000),
        });
        const text = await response.text();
        const problem = improperAnswer(response.status, text);
        if (problem !== undefined) {
          failures.push(
            `#${index} ${request.kind} ${request.path}: ${problem}: ${text.slice(0, 200)}`,
          );
        }
        const key = `${request.kind} → ${response.status}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      } catch (error) {
        failures.push(`#${index} ${request.kind} ${request.path}: no answer: ${error}`);
      }
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `fuzz: ${REQUESTS} requests to ${PROCEDURES.length} procedures in ${
      seconds.toFixed(1)
    } s (seed ${SEED})`,
  );
  console.log([...counts].sort().map(([k, n]) => `  ${k}: ${n}`).join("\n"));

  assert.deepEqual(failures.slice(0, 10), [], `seed ${SEED}: ${failures.length} improper answers`);
  assert.ok(
    [...counts.keys()].some((k) => k.startsWith("oversized → 429")),
    "oversized bodies are ResourceExhausted",
  );
  assert.ok([...counts.keys()].some((k) => k.startsWith("wrong content type → 415")));
  assert.ok([...counts.keys()].some((k) => k.startsWith("valid shape → 400")));

  // Still alive and still useful: a worker runs a job on a queue no fuzz request used.
  await waitForHealth(url);
  const queue = `after-fuzz-${SEED}`;
  await using worker = startAirunner(["worker", "--server", url, "--queue", queue]);
  const result = await runAirunner([
    "submit",
    "--server",
    url,
    "--queue",
    queue,
    "--follow",
    "--",
    "echo",
    "still here",
  ]);
  assert.equal(result.stdout, "still here\n", result.stderr);
  assert.equal(result.code, 0);
  await worker.stop();

  const { stderr } = await server.stop();
  assert.doesNotMatch(stderr, /"level":(50|60)/, `seed ${SEED}: the server logged an error`);
});

const RAW_CASES = 160;
const RAW_CONCURRENCY = 16;
const RAW_BODY_IDLE_TIMEOUT_MS = 1000;
/** Shaped like a JWT, so a leak of any part of it is easy to find. */
const QUERY_TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJmdXp6In0.cXVlcnktc3RyaW5nLXRva2Vu";
const RAW_KINDS = [
  "short body",
  "slow body",
  "silent body",
  "slow headers",
  "endless headers",
  "nested JSON",
  "query token",
] as const;
type RawKind = typeof RAW_KINDS[number];

interface RawOutcome {
  readonly answer: RawAnswer | undefined;
  readonly closed: boolean;
}

/** Plays one raw case against `port`; every step is bounded in time. */
async function playRawCase(
  rng: Random,
  kind: RawKind,
  procedure: Procedure,
  port: number,
): Promise<RawOutcome> {
  const streaming = procedure.streamingRequest || procedure.streamingResponse;
  const contentType = streaming ? "application/connect+proto" : "application/proto";
  // Small messages, so that sending them slowly stays quick.
  const shape = validShape(rng, procedure);
  const message = shape.byteLength <= 256 ? shape : new Uint8Array();
  const body = streaming ? envelope(0, message) : message;
  await using conn = await RawConnection.open(port);
  // A deadline, so that a valid DequeueJob does not wait a minute for a job.
  const head = (headers: Record<string, string | number>, path = procedure.path) =>
    postHead(path, { "content-type": contentType, "connect-timeout-ms": 2000, ...headers });
  try {
    await sendRawCase(rng, kind, conn, head, body, procedure, streaming);
  } catch {
    // The server answered and closed before the client was done sending.
  }
  const answer = await conn.answer(kind === "endless headers" ? 300 : 8_000);
  return { answer, closed: conn.closed };
}

async function sendRawCase(
  rng: Random,
  kind: RawKind,
  conn: RawConnection,
  head: (headers: Record<string, string | number>, path?: string) => string,
  body: Uint8Array,
  procedure: Procedure,
  streaming: boolean,
): Promise<void> {
  const encoder = new TextEncoder();
  switch (kind) {
    case "short body": {
      const declared = body.byteLength + 1 + rng.int(100_000);
      await conn.send(head({ "content-length": declared }));
      await conn.send(body.subarray(0, rng.int(body.byteLength + 1)));
      if (rng.chance(0.5)) await conn.closeWrite();
      else await conn.close();
      break;
    }
    case "slow body":
      // Pieces well inside the idle timeout: a slow client, not a silent one.
      await conn.send(head({ "content-length": body.byteLength }));
      await conn.trickle(body, 50 + rng.int(150), 1 + rng.int(40));
      break;
    case "silent body":
      // Never a whole message: what waits is the body, not the call.
      await conn.send(head({ "content-length": body.byteLength + 1 + rng.int(9_000_000) }));
      await conn.send(body.subarray(0, rng.int(body.byteLength)));
      break;
    case "slow headers":
      await conn.trickle(
        encoder.encode(head({ "content-length": body.byteLength })),
        20 + rng.int(60),
        10,
      );
      await conn.send(body);
      break;
    case "endless headers":
      await conn.trickle(encoder.encode(`POST ${procedure.path} HTTP/1.1\r\nhost: 1`), 50, 8);
      break;
    case "nested JSON": {
      const depth = rng.pick([65, 100, 10_000, 1_000_000]);
      const json = encoder.encode(
        `{"queue":${"[".repeat(depth)}${"]".repeat(depth)}}`,
      );
      const data = streaming ? envelope(0, json) : json;
      await conn.send(head({
        "content-type": streaming ? "application/connect+json" : "application/json",
        "content-length": data.byteLength,
      }));
      await conn.send(data);
      break;
    }
    case "query token":
      await conn.send(head(
        { "content-length": body.byteLength },
        `${procedure.path}?${rng.pick(["token", "access_token", "auth"])}=${QUERY_TOKEN}`,
      ));
      await conn.send(body);
      break;
  }
}

/** Why `outcome` is not a proper end of a `kind` case, or undefined when it is. */
function improperRawOutcome(kind: RawKind, procedure: Procedure, outcome: RawOutcome) {
  const { answer } = outcome;
  const streamingResponse = procedure.streamingResponse;
  if (kind === "endless headers") return answer === undefined ? undefined : "answered a half head";
  // A half-closed client of a streaming call reads to Deno as one that
  // left: the stream's answer stops where it was, and the connection closes.
  if (kind === "short body" && streamingResponse && outcome.closed) return undefined;
  if (answer === undefined) {
    return kind === "short body" && outcome.closed ? undefined : "no answer";
  }
  const problem = improperAnswer(answer.status, answer.body);
  if (problem !== undefined) return problem;
  const expected: Partial<Record<RawKind, RegExp>> = {
    "short body": /"code":"invalid_argument"/,
    "silent body": /"code":"(deadline_exceeded|resource_exhausted)"/,
    "nested JSON": /"code":"invalid_argument","message":"request JSON nests/,
  };
  const wanted = expected[kind];
  if (wanted !== undefined && !wanted.test(answer.body)) return `not ${wanted}`;
  return undefined;
}

Deno.test(`raw HTTP: short, slow and silent bodies, slow and endless headers, nested JSON, query tokens (seed ${SEED})`, async () => {
  await using server = await startEdgeServer({
    bodyIdleTimeoutMs: RAW_BODY_IDLE_TIMEOUT_MS,
    auth: false,
  });
  const rng = new Random(SEED ^ 0x5eed);
  // A client of a client or bidi stream that half-closes has ended its
  // side, which is its right; the server answers in its own time.
  const oneMessage = PROCEDURES.filter((p) => !p.streamingRequest);
  const plan = Array.from({ length: RAW_CASES }, (_, i) => {
    const kind = RAW_KINDS[i % RAW_KINDS.length]!;
    return {
      kind,
      procedure: rng.pick(kind === "short body" ? oneMessage : PROCEDURES),
      rng: new Random(rng.int(2 ** 31)),
    };
  });
  const failures: string[] = [];
  const counts = new Map<string, number>();
  let next = 0;
  await Promise.all(Array.from({ length: RAW_CONCURRENCY }, async () => {
    while (next < plan.length) {
      const index = next++;
      const { kind, procedure, rng } = plan[index]!;
      try {
        const outcome = await playRawCase(rng, kind, procedure, server.port);
        const problem = improperRawOutcome(kind, procedure, outcome);
        if (problem !== undefined) {
          failures.push(
            `#${index} ${kind} ${procedure.path}: ${problem}: ${
              outcome.answer?.body.slice(0, 200)
            }`,
          );
        }
        const key = `${kind} → ${outcome.answer?.status ?? "no answer"}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      } catch (error) {
        failures.push(`#${index} ${kind} ${procedure.path}: ${error}`);
      }
    }
  }));
  console.log([...counts].sort().map(([k, n]) => `  ${k}: ${n}`).join("\n"));
  assert.deepEqual(failures.slice(0, 10), [], `seed ${SEED}: ${failures.length} improper outcomes`);
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200, "still serving");
  await health.body?.cancel();
  const log = await server.stop();
  assert.doesNotMatch(log, /"level":(50|60)/, `seed ${SEED}: the server logged an error`);
  assert.ok(!log.includes(QUERY_TOKEN.slice(0, 12)), "no query-string token reached the log");
});
