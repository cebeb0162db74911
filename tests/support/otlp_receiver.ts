/**
 * A small OTLP/HTTP receiver for tests: accepts the protobuf exports Deno's
 * built-in OpenTelemetry sends (/v1/traces, /v1/metrics, /v1/logs) on
 * 127.0.0.1 and decodes the few fields tests look at, with a minimal
 * protobuf wire reader (no schema needed).
 *
 * @module
 */

/** A received span. */
export interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
}

/** A running receiver. */
export interface OtlpReceiver extends AsyncDisposable {
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Metric names received, with the services that sent each. */
  readonly metrics: Map<string, Set<string>>;
}

type Fields = Map<number, (bigint | Uint8Array)[]>;

/** Decodes one protobuf message into its fields (length-delimited values stay bytes). */
export function decodeFields(bytes: Uint8Array): Fields {
  const fields: Fields = new Map();
  let offset = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = bytes[offset++];
      if (byte === undefined) throw new Error("truncated varint");
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (offset < bytes.length) {
    const tag = Number(varint());
    const field = tag >>> 3;
    let value: bigint | Uint8Array;
    switch (tag & 7) {
      case 0:
        value = varint();
        break;
      case 1:
        value = bytes.slice(offset, offset + 8);
        offset += 8;
        break;
      case 2: {
        const length = Number(varint());
        value = bytes.subarray(offset, offset + length);
        offset += length;
        break;
      }
      case 5:
        value = bytes.slice(offset, offset + 4);
        offset += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${tag & 7}`);
    }
    const list = fields.get(field) ?? [];
    list.push(value);
    fields.set(field, list);
  }
  return fields;
}

const text = new TextDecoder();
const messages = (fields: Fields, n: number) =>
  (fields.get(n) ?? []).filter((v): v is Uint8Array => v instanceof Uint8Array).map(decodeFields);
const str = (fields: Fields, n: number) => {
  const v = fields.get(n)?.[0];
  return v instanceof Uint8Array ? text.decode(v) : "";
};
const hex = (fields: Fields, n: number) => {
  const v = fields.get(n)?.[0];
  return v instanceof Uint8Array
    ? Array.from(v, (b) => b.toString(16).padStart(2, "0")).join("")
    : "";
};

/** KeyValue list → record (string, int, bool and double values). */
function attributesOf(list: Fields[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list) {
    const value = messages(kv, 2)[0];
    if (value === undefined) continue;
    const key = str(kv, 1);
    if (value.has(1)) out[key] = str(value, 1);
    else if (value.has(2)) out[key] = value.get(2)![0] === 1n;
    else if (value.has(3)) out[key] = Number(value.get(3)![0] as bigint);
    else if (value.has(4)) {
      out[key] = new DataView((value.get(4)![0] as Uint8Array).buffer).getFloat64(0, true);
    }
  }
  return out;
}

/** Starts a receiver on a free 127.0.0.1 port. */
export function startOtlpReceiver(): OtlpReceiver {
  const spans: ReceivedSpan[] = [];
  const metrics = new Map<string, Set<string>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = new Uint8Array(await req.arrayBuffer());
    const path = new URL(req.url).pathname;
    for (const resource of messages(decodeFields(body), 1)) {
      const service = String(
        attributesOf(messages(messages(resource, 1)[0] ?? new Map(), 1))["service.name"] ?? "",
      );
      for (const scope of messages(resource, 2)) {
        if (path === "/v1/traces") {
          for (const span of messages(scope, 2)) {
            spans.push({
              service,
              traceId: hex(span, 1),
              spanId: hex(span, 2),
              parentSpanId: hex(span, 4),
              name: str(span, 5),
              attributes: attributesOf(messages(span, 9)),
            });
          }
        } else if (path === "/v1/metrics") {
          for (const metric of messages(scope, 2)) {
            const name = str(metric, 1);
            const services = metrics.get(name) ?? new Set();
            services.add(service);
            metrics.set(name, services);
          }
        }
      }
    }
    return new Response(new Uint8Array(), {
      headers: { "content-type": "application/x-protobuf" },
    });
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    spans,
    metrics,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}
