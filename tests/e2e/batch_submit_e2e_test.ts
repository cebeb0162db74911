/**
 * `airunner submit --batch`, driven as a process: against a real
 * `airunner dev` (ids in order, jobs that run, per-line refusals, a bad
 * file that sends nothing, --json, flag conflicts, the README example),
 * and against a stand-in server that fails on purpose (chunks of 500,
 * retries that reuse the same request ids).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import {
  EnqueueJobsRequestSchema,
  EnqueueJobsResponseSchema,
  type EnqueueJobsResult,
  EnqueueJobsResultSchema,
} from "../../gen/job/v1/job_pb.ts";
import {
  airunnerInvocation,
  type AirunnerResult,
  runAirunner,
  startDev,
} from "../support/airunner_process.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Runs airunner with `input` on its stdin. */
async function runWithStdin(
  args: readonly string[],
  input: string,
  env: Record<string, string>,
): Promise<AirunnerResult> {
  const { command, args: argv } = airunnerInvocation(args);
  const child = new Deno.Command(command, {
    args: argv,
    env: { NO_COLOR: "1", ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** JSON lines, one per job. */
function jsonLines(jobs: readonly Record<string, unknown>[]): string {
  return jobs.map((job) => JSON.stringify(job) + "\n").join("");
}

interface ListedJob {
  id: string;
  state: string;
  command: string;
  owner: string;
  queue: string;
}

Deno.test("submit --batch against a real dev server", async (t) => {
  await using dev = await startDev({ prefix: "airunner-batch-e2e-", workers: 4 });
  const { server, scratch: dataDir } = dev;
  const env = { AIRUNNER_SERVER: server, USER: "tester" };
  const cli = (...args: string[]) => runAirunner(args, { env });
  const batch = (input: string, ...args: string[]) =>
    runWithStdin(["submit", "--batch", "-", ...args], input, env);
  const listAll = async (): Promise<ListedJob[]> => {
    const r = await cli("list", "--json", "--page-size", "1000");
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };

  await t.step("a bad line: exit 2 naming the line, nothing submitted", async () => {
    const good = JSON.stringify({ command: "true" });
    const missingCommand = await batch(
      [good, "# a comment", "", good, JSON.stringify({ args: ["x"] }), good].join("\n"),
    );
    assert.equal(missingCommand.code, 2);
    assert.equal(missingCommand.stdout, "");
    assert.equal(missingCommand.stderr, "airunner: error: line 5: command is required\n");

    const file = join(dataDir, "bad.jsonl");
    await Deno.writeTextFile(file, `${good}\n${good}\n{"command": "true",\n`);
    const badJson = await cli("submit", "--batch", file);
    assert.equal(badJson.code, 2);
    assert.match(badJson.stderr, /^airunner: error: line 3: not valid JSON: /);

    const badField = await batch(`${good}\n${JSON.stringify({ command: "true", queue: "a b" })}\n`);
    assert.equal(badField.code, 2);
    assert.match(badField.stderr, /^airunner: error: line 2: queue: /);

    const missing = await cli("submit", "--batch", join(dataDir, "missing.jsonl"));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--batch: cannot read/);

    assert.deepEqual(await listAll(), [], "no job was enqueued");
  });

  await t.step(
    "--batch with --follow, --wait, --config or a command is a usage error",
    async () => {
      const follow = await cli("submit", "--batch", "-", "--follow");
      assert.equal(follow.code, 2);
      assert.match(follow.stderr, /--batch cannot be combined with --follow/);
      const several = await cli("submit", "--batch", "-", "--wait", "--config", "job.yaml");
      assert.equal(several.code, 2);
      assert.match(several.stderr, /--batch cannot be combined with --config, --wait/);
      const command = await cli("submit", "--batch", "-", "--", "echo", "hi");
      assert.equal(command.code, 2);
      assert.match(command.stderr, /--batch cannot be combined with a command after --/);
      assert.deepEqual(await listAll(), []);
    },
  );

  await t.step("250 lines from stdin: 250 ids in order, and the jobs run", async () => {
    const lines = Array.from({ length: 250 }, (_, i) => ({
      command: "sh",
      args: ["-c", `echo job ${i + 1}`],
    }));
    const r = await batch(jsonLines(lines), "--metadata", "batch=a");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const ids = r.stdout.trim().split("\n");
    assert.equal(ids.length, 250);
    for (const id of ids) assert.match(id, UUID);
    assert.equal(new Set(ids).size, 250, "all distinct");

    let listed: ListedJob[] = [];
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      listed = await listAll();
      if (listed.filter((j) => j.state === "completed").length === 250) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.deepEqual(new Set(listed.map((j) => j.id)), new Set(ids));
    assert.ok(listed.every((j) => j.state === "completed"), "every job ran");
    assert.ok(listed.every((j) => j.owner === "tester"), "the local user owns them");
    // Ids come in input order: the 17th id is the job of the 17th line.
    const logs = await cli("logs", ids[16]!);
    assert.equal(logs.stdout, "job 17\n");
  });

  await t.step("flags are defaults; a line's own keys win", async () => {
    const r = await batch(
      jsonLines([
        { command: "true", environment: { B: "line" }, metadata: { m: "line" } },
        { command: "true", queue: "other", owner: "ada", timeout: "2m" },
      ]),
      "--queue",
      "defaults",
      "--owner",
      "flag-owner",
      "--env",
      "A=flag",
      "--env",
      "B=flag",
      "--metadata",
      "m=flag",
      "--timeout",
      "1m",
    );
    assert.equal(r.code, 0, r.stderr);
    const [first, second] = r.stdout.trim().split("\n");
    const got = async (id: string) =>
      JSON.parse((await cli("get", id!, "--json", "--show-env")).stdout);
    const one = await got(first!);
    assert.equal(one.queue, "defaults");
    assert.equal(one.owner, "flag-owner");
    assert.deepEqual(one.environment, { A: "flag", B: "line" });
    assert.deepEqual(one.metadata, { m: "line" });
    assert.equal(one.timeoutSeconds, 60);
    const two = await got(second!);
    assert.equal(two.queue, "other");
    assert.equal(two.owner, "ada");
    assert.equal(two.timeoutSeconds, 120);
  });

  await t.step("a refused line: named on stderr, exit 1, the others enqueued", async () => {
    const before = (await listAll()).length;
    const first = await batch(jsonLines([{ command: "true", request_id: "batch-e2e-1" }]));
    assert.equal(first.code, 0, first.stderr);
    const input = jsonLines([
      { command: "echo", args: ["a"] },
      { command: "false", request_id: "batch-e2e-1" }, // the id names another job
      { command: "echo", args: ["c"], request_id: "batch-e2e-2" },
      { command: "echo", args: ["d"], request_id: "batch-e2e-2" }, // repeated, other params
      { command: "true", request_id: "batch-e2e-1" }, // the same job again
    ]);
    const r = await batch(input);
    assert.equal(r.code, 1);
    const errors = r.stderr.trim().split("\n");
    assert.equal(errors.length, 2, r.stderr);
    assert.match(errors[0]!, /^airunner: error: line 2: request_id "batch-e2e-1" .*already_exists/);
    assert.match(errors[1]!, /^airunner: error: line 4: request_id "batch-e2e-2" .*already_exists/);
    const ids = r.stdout.trim().split("\n");
    assert.equal(ids.length, 3, "the refused lines print nothing");
    assert.equal(ids[2], first.stdout.trim(), "a repeated request id returns its job");
    assert.equal((await listAll()).length, before + 3, "lines 1 and 3 enqueued new jobs");
  });

  await t.step("--json: one object per line, in input order", async () => {
    const r = await batch(
      jsonLines([
        { command: "true", request_id: "batch-e2e-json" },
        { command: "false", request_id: "batch-e2e-1" },
        { command: "true", request_id: "batch-e2e-json" },
      ]),
      "--json",
    );
    assert.equal(r.code, 1);
    const out = r.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assert.equal(out.length, 3);
    assert.deepEqual(Object.keys(out[0]).sort(), ["created", "job_id", "line"]);
    assert.equal(out[0].line, 1);
    assert.match(out[0].job_id, UUID);
    assert.equal(out[0].created, true);
    assert.deepEqual(Object.keys(out[1]).sort(), ["error", "line"]);
    assert.equal(out[1].line, 2);
    assert.match(out[1].error, /request_id "batch-e2e-1" .*already_exists/);
    assert.deepEqual(out[2], { line: 3, job_id: out[0].job_id, created: false });
    assert.match(r.stderr, /^airunner: error: line 2: /);
  });

  await t.step("the README's --batch example runs as written", async () => {
    const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
    const script = [...readme.matchAll(/```bash\n([\s\S]*?)```/g)]
      .map((m) => m[1] ?? "").find((block) => block.includes("--batch"));
    assert.ok(script !== undefined, "README has a ```bash block with --batch");
    const out = await dev.runScript(script);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, "shard 42\n");
    const ids = (await Deno.readTextFile(join(dataDir, "ids.txt"))).trim().split("\n");
    assert.equal(ids.length, 1000);
  });

  await dev.stop();
});

Deno.test("submit --batch sends chunks of 500 and retries them with the same request ids", async () => {
  const calls: string[][] = [];
  const seen = new Set<string>();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      assert.equal(new URL(req.url).pathname, "/job.v1.JobService/EnqueueJobs");
      // The CLI speaks the Connect protocol with JSON bodies (src/client/json_client.ts).
      assert.equal(req.headers.get("content-type"), "application/json");
      const request = fromJson(EnqueueJobsRequestSchema, await req.json() as JsonValue);
      const ids = request.jobs.map((job) => job.requestId);
      calls.push(ids);
      if (calls.length === 1) {
        return Response.json({ code: "unavailable", message: "try again" }, { status: 503 });
      }
      const results = ids.map((requestId): EnqueueJobsResult => {
        // "flaky" fails the first time it gets through, as a throttled store item would.
        if (requestId === "flaky" && !seen.has(requestId)) {
          seen.add(requestId);
          return create(EnqueueJobsResultSchema, {
            requestId,
            outcome: { case: "error", value: { code: 14, message: "throttled" } },
          });
        }
        return create(EnqueueJobsResultSchema, {
          requestId,
          created: true,
          outcome: { case: "job", value: { jobId: `job-${requestId}` } },
        });
      });
      return Response.json(
        toJson(EnqueueJobsResponseSchema, create(EnqueueJobsResponseSchema, { results })),
      );
    },
  );
  const lines = Array.from(
    { length: 1200 },
    (_, i) => i === 2 ? { command: "true", request_id: "flaky" } : { command: "true" },
  );
  const r = await runWithStdin(
    ["submit", "--batch", "-"],
    jsonLines(lines),
    { AIRUNNER_SERVER: `http://127.0.0.1:${server.addr.port}` },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(calls.map((ids) => ids.length), [500, 500, 1, 500, 200]);
  assert.deepEqual(calls[1], calls[0], "the retried call reuses the request ids");
  assert.deepEqual(calls[2], ["flaky"], "only the item that failed is retried");
  const sent = [...calls[1]!, ...calls[3]!, ...calls[4]!];
  assert.equal(new Set(sent).size, 1200, "every line has its own request id");
  assert.deepEqual(
    r.stdout.trim().split("\n"),
    sent.map((id) => `job-${id}`),
    "ids in input order",
  );
});
