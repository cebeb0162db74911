/**
 * Protobuf JSON (proto3's canonical mapping) for job.v1 messages, driven by
 * the lite schema in gen/job/v1/job_lite.ts instead of the protobuf
 * runtime, so that a CLI call loads no npm package (see
 * scripts/gen_lite.ts for the figures). Pure.
 *
 * {@link toJsonValue} gives what `toJson(Schema, create(Schema, init))`
 * gives, and {@link fromJsonValue} what `fromJson(Schema, json,
 * {ignoreUnknownFields: true})` gives, deep-equal:
 * tests/protocol/json_codec_test.ts holds both to @bufbuild/protobuf on
 * every message of the file.
 *
 * @module
 */
import { LITE_ENUMS, LITE_MESSAGES, type LiteField } from "../../gen/job/v1/job_lite.ts";

/** A JSON value, as JSON.parse returns it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

type JsonObject = { [k: string]: JsonValue };

/** A message the server sent that does not decode. */
export class JsonDecodeError extends Error {
  constructor(typeName: string, detail: string) {
    super(`cannot decode ${typeName} from JSON: ${detail}`);
    this.name = "JsonDecodeError";
  }
}

const TIMESTAMP = "google.protobuf.Timestamp";
const DURATION = "google.protobuf.Duration";
const LONG_TYPES = new Set(["int64", "uint64", "fixed64", "sfixed64", "sint64"]);

function fieldsOf(typeName: string): readonly LiteField[] {
  const fields = LITE_MESSAGES[typeName];
  if (fields === undefined) throw new JsonDecodeError(typeName, "unknown message type");
  return fields;
}

// ---------------------------------------------------------------- encoding

/** The proto3 JSON of a message of type `typeName` given as an init object (or a message). */
export function toJsonValue(typeName: string, init: object): JsonObject {
  const source = init as Record<string, unknown>;
  const out: JsonObject = {};
  for (const field of fieldsOf(typeName)) {
    let value: unknown;
    if (field.oneof !== undefined) {
      const group = source[field.oneof] as { case?: string; value?: unknown } | undefined;
      if (group?.case !== field.local) continue;
      value = group.value;
    } else {
      value = source[field.local];
    }
    if (value === undefined || value === null) continue;
    const json = encodeField(field, value, field.oneof !== undefined);
    if (json !== undefined) out[field.json] = json;
  }
  return out;
}

function encodeField(field: LiteField, value: unknown, present: boolean): JsonValue | undefined {
  if (field.mapKey !== undefined) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return undefined;
    return Object.fromEntries(entries.map(([k, v]) => [k, encodeSingle(field, v)]));
  }
  if (field.repeated === true) {
    const items = value as readonly unknown[];
    return items.length === 0 ? undefined : items.map((v) => encodeSingle(field, v));
  }
  if (!present && field.kind !== "message" && isDefault(field, value)) return undefined;
  return encodeSingle(field, value);
}

function isDefault(field: LiteField, value: unknown): boolean {
  if (field.kind === "enum") return value === 0;
  if (field.type === "bytes") return (value as Uint8Array).byteLength === 0;
  if (LONG_TYPES.has(field.type)) return BigInt(value as bigint | number | string) === 0n;
  return value === "" || value === 0 || value === false;
}

function encodeSingle(field: LiteField, value: unknown): JsonValue {
  if (field.kind === "enum") return LITE_ENUMS[field.type]?.[value as number] ?? (value as number);
  if (field.kind === "message") {
    if (field.type === TIMESTAMP) return timestampJson(value as Seconds);
    if (field.type === DURATION) return durationJson(value as Seconds);
    return toJsonValue(field.type, value as object);
  }
  if (LONG_TYPES.has(field.type)) return BigInt(value as bigint | number | string).toString();
  if (field.type === "bytes") return base64Of(value as Uint8Array);
  if (field.type === "double" || field.type === "float") {
    const n = value as number;
    if (Number.isNaN(n)) return "NaN";
    if (n === Infinity) return "Infinity";
    if (n === -Infinity) return "-Infinity";
  }
  return value as JsonValue;
}

interface Seconds {
  readonly seconds?: bigint | number;
  readonly nanos?: number;
}

/** Digits of a fraction the way protobuf JSON writes them: none, 3, 6 or 9. */
function fraction(nanos: number): string {
  if (nanos === 0) return "";
  const nine = String(nanos).padStart(9, "0");
  if (nanos % 1_000_000 === 0) return `.${nine.slice(0, 3)}`;
  if (nanos % 1_000 === 0) return `.${nine.slice(0, 6)}`;
  return `.${nine}`;
}

function timestampJson(ts: Seconds): string {
  const ms = Number(ts.seconds ?? 0) * 1000;
  const whole = new Date(ms).toISOString().replace(/\.\d{3}Z$/, "");
  return `${whole}${fraction(ts.nanos ?? 0)}Z`;
}

function durationJson(d: Seconds): string {
  const seconds = BigInt(d.seconds ?? 0);
  const nanos = d.nanos ?? 0;
  const negative = seconds < 0n || nanos < 0;
  const abs = seconds < 0n ? -seconds : seconds;
  return `${negative ? "-" : ""}${abs}${fraction(Math.abs(nanos))}s`;
}

function base64Of(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** The size in bytes of the JSON that {@link toJsonValue} makes of `init`, as UTF-8. */
export function jsonByteLength(typeName: string, init: object): number {
  return new TextEncoder().encode(JSON.stringify(toJsonValue(typeName, init))).byteLength;
}

// ---------------------------------------------------------------- decoding

/**
 * The message of type `typeName` that `json` encodes, with every field the
 * JSON leaves out at its default. Fields this build does not know (a newer
 * server's) are ignored.
 */
export function fromJsonValue<T>(typeName: string, json: JsonValue): T {
  return decodeMessage(typeName, json) as T;
}

function decodeMessage(typeName: string, json: JsonValue): Record<string, unknown> {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new JsonDecodeError(typeName, "expected an object");
  }
  const message: Record<string, unknown> = { $typeName: typeName };
  const fields = fieldsOf(typeName);
  for (const field of fields) {
    // Like the runtime, an unset message field is no property at all.
    if (field.oneof !== undefined) message[field.oneof] ??= { case: undefined };
    else if (field.kind !== "message" || field.repeated === true || field.mapKey !== undefined) {
      message[field.local] = defaultOf(field);
    }
  }
  for (const field of fields) {
    const raw = json[field.json] ?? json[field.local];
    if (raw === undefined || raw === null) continue;
    const value = decodeField(typeName, field, raw);
    if (value === undefined) continue;
    if (field.oneof !== undefined) {
      const group = message[field.oneof] as { case: string | undefined };
      if (group.case !== undefined) {
        throw new JsonDecodeError(`${typeName}.${field.oneof}`, "sets more than one member");
      }
      message[field.oneof] = { case: field.local, value };
    } else message[field.local] = value;
  }
  return message;
}

function defaultOf(field: LiteField): unknown {
  if (field.mapKey !== undefined) return {};
  if (field.repeated === true) return [];
  if (field.kind === "enum") return 0;
  if (LONG_TYPES.has(field.type)) return 0n;
  if (field.type === "string") return "";
  if (field.type === "bool") return false;
  if (field.type === "bytes") return new Uint8Array(0);
  return 0;
}

function decodeField(typeName: string, field: LiteField, raw: JsonValue): unknown {
  const where = `${typeName}.${field.local}`;
  if (field.mapKey !== undefined) {
    if (typeof raw !== "object" || Array.isArray(raw)) {
      throw new JsonDecodeError(where, "expected an object");
    }
    const map: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw as JsonObject)) {
      const value = decodeSingle(where, field, v);
      if (value !== undefined) map[k] = value;
    }
    return map;
  }
  if (field.repeated === true) {
    if (!Array.isArray(raw)) throw new JsonDecodeError(where, "expected an array");
    return raw.map((v) => decodeSingle(where, field, v)).filter((v) => v !== undefined);
  }
  return decodeSingle(where, field, raw);
}

function decodeSingle(where: string, field: LiteField, raw: JsonValue): unknown {
  if (field.kind === "enum") return decodeEnum(field.type, raw);
  if (field.kind === "message") {
    if (field.type === TIMESTAMP) return parseTimestamp(where, raw);
    if (field.type === DURATION) return parseDuration(where, raw);
    return decodeMessage(field.type, raw);
  }
  if (LONG_TYPES.has(field.type)) {
    const text = typeof raw === "number" ? String(raw) : raw;
    if (typeof text !== "string" || !/^-?\d+$/.test(text)) {
      throw new JsonDecodeError(where, "expected an integer");
    }
    return BigInt(text);
  }
  switch (field.type) {
    case "string":
      if (typeof raw !== "string") throw new JsonDecodeError(where, "expected a string");
      return raw;
    case "bool":
      if (typeof raw !== "boolean") throw new JsonDecodeError(where, "expected a boolean");
      return raw;
    case "bytes":
      if (typeof raw !== "string") throw new JsonDecodeError(where, "expected base64");
      return bytesOf(raw);
    case "double":
    case "float":
      if (typeof raw === "string") return Number(raw);
      if (typeof raw !== "number") throw new JsonDecodeError(where, "expected a number");
      return raw;
    default: {
      const n = typeof raw === "string" && /^-?\d+$/.test(raw) ? Number(raw) : raw;
      const [min, max] = field.type.startsWith("u") || field.type === "fixed32"
        ? [0, 2 ** 32 - 1]
        : [-(2 ** 31), 2 ** 31 - 1];
      if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
        throw new JsonDecodeError(where, "expected a 32-bit integer");
      }
      return n;
    }
  }
}

/** An enum's number; undefined (the field stays at its default) for a name this build lacks. */
function decodeEnum(typeName: string, raw: JsonValue): number | undefined {
  if (typeof raw === "number") return raw;
  if (typeof raw !== "string") throw new JsonDecodeError(typeName, "expected an enum name");
  const values = LITE_ENUMS[typeName] ?? {};
  for (const [number, name] of Object.entries(values)) if (name === raw) return Number(number);
  return undefined;
}

const TIMESTAMP_PATTERN = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/;

function parseTimestamp(where: string, raw: JsonValue): object {
  const m = typeof raw === "string" ? TIMESTAMP_PATTERN.exec(raw) : null;
  const ms = m === null ? NaN : Date.parse(`${m[1]}${m[3]}`);
  // Protobuf's Timestamp spans the years 0001 to 9999.
  if (m === null || Number.isNaN(ms) || m[1]!.startsWith("0000")) {
    throw new JsonDecodeError(where, "expected an RFC 3339 time");
  }
  return {
    $typeName: TIMESTAMP,
    seconds: BigInt(Math.floor(ms / 1000)),
    nanos: Number((m[2] ?? "").padEnd(9, "0")),
  };
}

const DURATION_PATTERN = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

function parseDuration(where: string, raw: JsonValue): object {
  const m = typeof raw === "string" ? DURATION_PATTERN.exec(raw) : null;
  if (m === null) throw new JsonDecodeError(where, 'expected a duration such as "1.5s"');
  const sign = m[1] === "-" ? -1 : 1;
  const nanos = Number((m[3] ?? "").padEnd(9, "0"));
  return {
    $typeName: DURATION,
    seconds: BigInt(m[2]!) * BigInt(sign),
    nanos: nanos === 0 ? 0 : sign * nanos,
  };
}

function bytesOf(text: string): Uint8Array {
  // Protobuf JSON accepts standard and URL-safe base64, padded or not.
  const standard = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = standard + "=".repeat((4 - (standard.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
