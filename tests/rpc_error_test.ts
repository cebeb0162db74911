/**
 * The runtime-free RPC codes and errors (src/rpc_error.ts) agree
 * with @connectrpc/connect: the same numbers and wire names, and a
 * ConnectError reads like an RpcError.
 */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  RpcCode,
  rpcCodeFromHttpStatus,
  rpcCodeFromName,
  rpcCodeName,
  RpcError,
  rpcErrorCode,
  rpcErrorOf,
} from "../src/rpc_error.ts";

Deno.test("every code has Connect's number and the name ConnectError prints", () => {
  const connectNames = Object.keys(Code).filter((k) => isNaN(Number(k)));
  assert.deepEqual(Object.keys(RpcCode).sort(), connectNames.sort());
  for (const [name, code] of Object.entries(RpcCode)) {
    assert.equal(code, Code[name as keyof typeof Code], name);
    // ConnectError's message is "[name] message".
    const wireName = /^\[(\w+)\]/.exec(new ConnectError("m", code).message)![1];
    assert.equal(rpcCodeName(code), wireName);
    assert.equal(rpcCodeFromName(wireName!), code);
  }
  assert.equal(rpcCodeFromName("no_such_code"), undefined);
});

Deno.test("an RpcError reads like the ConnectError of the same failure", () => {
  const rpc = new RpcError("job x not found", RpcCode.NotFound);
  const connect = new ConnectError("job x not found", Code.NotFound);
  assert.equal(rpc.message, connect.message);
  for (const error of [rpc, connect]) {
    const failure = rpcErrorOf(error);
    assert.equal(failure?.code, Code.NotFound);
    assert.equal(failure?.rawMessage, "job x not found");
    assert.equal(rpcErrorCode(error), Code.NotFound);
  }
});

Deno.test("other errors get the code ConnectError.from gives them", () => {
  const samples: unknown[] = [
    new DOMException("stopped", "AbortError"),
    new DOMException("late", "TimeoutError"),
    new TypeError("fetch failed"),
    "a string",
  ];
  for (const error of samples) {
    assert.equal(rpcErrorOf(error), undefined);
    assert.equal(rpcErrorCode(error), ConnectError.from(error).code, String(error));
  }
});

Deno.test("a bare HTTP status maps by the Connect protocol's table", () => {
  const table: [number, Code][] = [
    [400, Code.Internal],
    [401, Code.Unauthenticated],
    [403, Code.PermissionDenied],
    [404, Code.Unimplemented],
    [429, Code.Unavailable],
    [502, Code.Unavailable],
    [503, Code.Unavailable],
    [504, Code.Unavailable],
    [500, Code.Unknown],
  ];
  for (const [status, code] of table) {
    assert.equal(rpcCodeFromHttpStatus(status), code, `${status}`);
  }
});
