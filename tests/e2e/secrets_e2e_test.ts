/**
 * Secret environment values end to end, with a real `airunner dev`: the job
 * gets the value, its output shows `***` live (`submit --follow`), in `logs`
 * and in the stored events; `get`, `get --json`, `get --show-env` and
 * `list --json` show the names only; the server's log holds no value. Flags,
 * a job file and a batch line give secrets the same way.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { openDataDirStore } from "../../src/store/data_dir.ts";
import { startDev, WORKER_PROTOCOLS } from "../support/airunner_process.ts";
import { storedEvents } from "../support/stored_events.ts";

const SECRET = "s3cr3t-value";
/** A shell test that $VAR holds SECRET, without the value in the command line (which `get` shows). */
const HOLDS_SECRET = (variable: string) =>
  `[ "$(printf %s "$${variable}" | sha256sum | cut -c1-64)" = ${
    createHash("sha256").update(SECRET).digest("hex")
  } ]`;
const KEY_LINES = [
  "-----BEGIN TEST KEY-----",
  "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
  "-----END TEST KEY-----",
];

for (const protocol of WORKER_PROTOCOLS) {
  Deno.test(`secret_env reaches the job, and shows as *** in its output, get, list, logs and the store [${protocol}]`, async () => {
    await using dev = await startDev({ prefix: "airunner-secrets-", protocol });
    const run = async (script: string) => {
      const result = await dev.runScript(script);
      return result;
    };

    // --secret-env NAME=VALUE, followed live.
    const followed = await run(
      `airunner submit --secret-env TOKEN=${SECRET} --follow -- sh -c 'echo $TOKEN; printf "%s" "$TOKEN" | cut -c1-4; ${
        HOLDS_SECRET("TOKEN")
      } && echo match; echo "to stderr $TOKEN" >&2'`,
    );
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(
      followed.stdout,
      "***\ns3cr\nmatch\n",
      "masked whole; a part of it is not the value",
    );
    assert.match(followed.stderr, /^to stderr \*\*\*$/m);
    assert.ok(!followed.stderr.includes(SECRET));
    const id = /job (\S+) submitted/.exec(followed.stderr)![1]!;

    // --secret-env NAME reads the value from the submitter's own environment.
    const fromEnv = await run(
      `export TOKEN=${SECRET}; airunner submit --secret-env TOKEN --follow -- sh -c '${
        HOLDS_SECRET("TOKEN")
      } && echo "got $TOKEN"'`,
    );
    assert.equal(fromEnv.stdout, "got ***\n", fromEnv.stderr);
    const unset = await run(`airunner submit --secret-env NOT_SET_HERE -- true`);
    assert.equal(unset.code, 2);
    assert.match(unset.stderr, /--secret-env: NOT_SET_HERE is not set in your environment/);

    // Readers see names only.
    const json = await run(`airunner get ${id} --json`);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout).secretEnvironment, { TOKEN: "***" });
    assert.match(json.stdout, /"TOKEN": "\*\*\*"/);
    for (
      const script of [
        `airunner get ${id} --show-env`,
        `airunner get ${id} --show-env --json`,
        "airunner list --json --show-env",
        `airunner get ${id}`,
      ]
    ) {
      const shown = await run(script);
      assert.equal(shown.code, 0, shown.stderr);
      assert.ok(!shown.stdout.includes(SECRET), `${script}: ${shown.stdout}`);
      assert.match(shown.stdout, /TOKEN.{1,4}\*\*\*/, script);
    }
    const logs = await run(`airunner logs ${id}`);
    assert.equal(logs.stdout, "***\ns3cr\nmatch\n");

    // A multi-line secret from a job file (secret_env), printed whole and line by line.
    await Deno.writeTextFile(
      join(dev.scratch, "job.yaml"),
      [
        "command: sh",
        'args: [-c, \'printf "%s\\n" "$KEY"; echo "$KEY" | sed -n 2p; echo "$KEY" | wc -l\']',
        "secret_env:",
        "  KEY: |-",
        ...KEY_LINES.map((line) => `    ${line}`),
      ].join("\n") + "\n",
    );
    const fromFile = await run("airunner submit --config job.yaml --follow");
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(fromFile.stdout.replace(/^ +/gm, ""), "***\n***\n3\n");
    const fileJob = /job (\S+) submitted/.exec(fromFile.stderr)![1]!;
    const fileJson = JSON.parse((await run(`airunner get ${fileJob} --json`)).stdout);
    assert.deepEqual(fileJson.secretEnvironment, { KEY: "***" });

    // A batch line with secret_env; --secret-env is every line's default.
    await Deno.writeTextFile(
      join(dev.scratch, "jobs.jsonl"),
      [
        `{"command": "sh", "args": ["-c", "echo line1 $TOKEN $OTHER"], "secret_env": {"OTHER": "batch-only-value"}}`,
        `{"command": "sh", "args": ["-c", "echo line2 $TOKEN"], "secret_env": {"TOKEN": "line-two-token"}}`,
      ].join("\n") + "\n",
    );
    const batch = await run(`airunner submit --batch jobs.jsonl --secret-env TOKEN=${SECRET}`);
    assert.equal(batch.code, 0, batch.stderr);
    const batchIds = batch.stdout.trim().split("\n");
    assert.equal(batchIds.length, 2);
    const line1 = await run(`airunner logs -f ${batchIds[0]}`);
    assert.equal(line1.stdout, "line1 *** ***\n");
    const line2 = await run(`airunner logs -f ${batchIds[1]}`);
    assert.equal(line2.stdout, "line2 ***\n");

    // Nothing stored of any job's output holds a value; the server's log neither.
    const stopped = await dev.stop("SIGINT");
    assert.equal(stopped.code, 0, stopped.stderr);
    const values = [SECRET, "batch-only-value", "line-two-token", ...KEY_LINES];
    for (const value of values) {
      assert.ok(!stopped.stderr.includes(value), `dev log holds ${value}`);
    }
    const store = await openDataDirStore(join(dev.scratch, "data"), { env: () => undefined });
    try {
      const jobIds = [id, fileJob, ...batchIds];
      for (const jobId of jobIds) {
        const events = await storedEvents(store, jobId);
        assert.ok(events.some((e) => e.eventData.case === "outputBatch"), jobId);
        const text = new TextDecoder().decode(
          new Uint8Array(
            events.flatMap((e) =>
              e.eventData.case === "outputBatch"
                ? e.eventData.value.outputs.flatMap((o) => [...o.output])
                : []
            ),
          ),
        );
        for (const value of values) assert.ok(!text.includes(value), `${jobId} stored ${value}`);
        assert.match(text, /\*\*\*/);
      }
    } finally {
      await store.close();
    }
  });
}
