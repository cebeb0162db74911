/**
 * The CLI's table-driven protobuf JSON (src/protocol/json_codec.ts) against
 * @bufbuild/protobuf's own toJson/fromJson, on every message of job.proto:
 * filled with values of every kind (each oneof case in turn, 64-bit
 * integers beyond 2^53, timestamps with nanoseconds, bytes, maps, lists,
 * enums) and empty.
 */
import assert from "node:assert/strict";
import {
  create,
  type DescField,
  type DescMessage,
  fromJson,
  type JsonValue,
  ScalarType,
  toJson,
} from "@bufbuild/protobuf";
import { file_job_v1_job } from "../../gen/job/v1/job_pb.ts";
import { fromJsonValue, toJsonValue } from "../../src/protocol/json_codec.ts";

function messagesOf(messages: readonly DescMessage[]): DescMessage[] {
  return messages.flatMap((m) => [m, ...messagesOf(m.nestedMessages)])
    .filter((m) => m.proto.options?.mapEntry !== true);
}

/** A non-default value of a scalar type; `n` varies it. */
function scalarValue(type: ScalarType, n: number): unknown {
  switch (type) {
    case ScalarType.STRING:
      return `s${n} ünï ✓`;
    case ScalarType.BOOL:
      return true;
    case ScalarType.BYTES:
      return new Uint8Array([0, 255, n % 256, 62, 63]);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return n % 2 === 0 ? 9_007_199_254_740_993n + BigInt(n) : -42n;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return 18_000_000_000_000_000_000n + BigInt(n);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return 1.5;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return 4_000_000_000 - n;
    default:
      return n % 2 === 0 ? 2_000_000_000 - n : -7;
  }
}

function singleValue(field: DescField, kind: string, n: number, depth: number): unknown {
  if (kind === "enum") return field.enum!.values.at(-1)!.number;
  if (kind === "message") return filled(field.message!, n, depth + 1);
  return scalarValue(field.scalar!, n);
}

/** A message of `desc` with every field set; oneofs take their `n`-th case. */
function filled(desc: DescMessage, n: number, depth = 0): Record<string, unknown> {
  if (desc.typeName === "google.protobuf.Timestamp") {
    return { seconds: 1_764_775_200n + BigInt(n), nanos: [0, 5_000_000, 123_456_000, 7][n % 4] };
  }
  if (desc.typeName === "google.protobuf.Duration") {
    return { seconds: BigInt(n), nanos: [0, 500_000_000, 1_000, 9][n % 4] };
  }
  const init: Record<string, unknown> = {};
  if (depth > 3) return init;
  for (const oneof of desc.oneofs) {
    const field = oneof.fields[n % oneof.fields.length]!;
    init[oneof.localName] = {
      case: field.localName,
      value: singleValue(field, field.fieldKind, n, depth),
    };
  }
  for (const field of desc.fields) {
    if (field.oneof !== undefined) continue;
    if (field.fieldKind === "list") {
      init[field.localName] = [0, 1].map((i) => singleValue(field, field.listKind, n + i, depth));
    } else if (field.fieldKind === "map") {
      init[field.localName] = {
        a: singleValue(field, field.mapKind, n, depth),
        "b=c": singleValue(field, field.mapKind, n + 1, depth),
      };
    } else {
      init[field.localName] = singleValue(field, field.fieldKind, n, depth);
    }
  }
  return init;
}

const MESSAGES = messagesOf(file_job_v1_job.messages);

Deno.test("every message encodes to the JSON @bufbuild/protobuf writes", () => {
  for (const desc of MESSAGES) {
    for (let n = 0; n < 8; n++) {
      const message = create(desc, filled(desc, n) as never);
      assert.deepEqual(toJsonValue(desc.typeName, message), toJson(desc, message), desc.typeName);
    }
    assert.deepEqual(toJsonValue(desc.typeName, create(desc)), toJson(desc, create(desc)));
  }
});

Deno.test("an init object (not a message) encodes like the message it makes", () => {
  const desc = MESSAGES.find((m) => m.typeName === "job.v1.StreamJobEventsRequest")!;
  const init = { jobId: "j", fromSequence: 12n, eventFilter: [1, 7] };
  assert.deepEqual(toJsonValue(desc.typeName, init), toJson(desc, create(desc, init as never)));
});

Deno.test("every message decodes to what @bufbuild/protobuf decodes", () => {
  for (const desc of MESSAGES) {
    for (let n = 0; n < 8; n++) {
      const json = toJson(desc, create(desc, filled(desc, n) as never));
      assert.deepEqual(
        fromJsonValue(desc.typeName, json as never),
        fromJson(desc, json),
        `${desc.typeName} #${n}`,
      );
    }
    assert.deepEqual(fromJsonValue(desc.typeName, {}), fromJson(desc, {}), desc.typeName);
  }
});

Deno.test("decoding ignores fields and enum names this build does not know", () => {
  const json = { jobId: "j", state: "JOB_STATE_FROM_THE_FUTURE", brandNewField: { x: 1 } };
  const job = fromJsonValue<{ jobId: string; state: number }>("job.v1.Job", json);
  assert.equal(job.jobId, "j");
  assert.equal(job.state, 0);
});

Deno.test("decoding names the field a server got wrong", () => {
  assert.throws(
    () => fromJsonValue("job.v1.Job", { attempt: "many" } as JsonValue as never),
    /job\.v1\.Job\.attempt from JSON: expected a 32-bit integer/,
  );
  assert.throws(
    () => fromJsonValue("job.v1.Job", { createdAt: "yesterday" }),
    /job\.v1\.Job\.createdAt from JSON: expected an RFC 3339 time/,
  );
});

Deno.test("decoding refuses what protobuf's JSON refuses: loose numbers, wrong kinds, two oneof members", () => {
  const refused: [string, Record<string, unknown>, RegExp][] = [
    ["job.v1.Job", { attempt: "" }, /attempt from JSON: expected a 32-bit integer/],
    ["job.v1.Job", { attempt: 4294967296 }, /expected a 32-bit integer/],
    ["job.v1.Job", { state: true }, /expected an enum name/],
    ["job.v1.Job", { createdAt: "0000-01-01T00:00:00Z" }, /RFC 3339/],
    ["job.v1.JobEvent", { sequence: " 12 " }, /sequence from JSON: expected an integer/],
    ["job.v1.JobEvent", { sequence: "" }, /expected an integer/],
    [
      "job.v1.JobEvent",
      { processStart: {}, processEnd: {} },
      /eventData from JSON: sets more than one member/,
    ],
  ];
  for (const [type, json, message] of refused) {
    assert.throws(() => fromJsonValue(type, json as never), message, JSON.stringify(json));
  }
  assert.equal(fromJsonValue<{ attempt: number }>("job.v1.Job", { attempt: "7" }).attempt, 7);
});
