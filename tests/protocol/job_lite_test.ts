/**
 * gen/job/v1/job_lite.ts is what scripts/gen_lite.ts makes of job_pb.ts
 * today (so a proto change without `deno task gen` fails here), and its
 * enums equal job_pb.ts's.
 */
import assert from "node:assert/strict";
import * as pb from "../../gen/job/v1/job_pb.ts";
import * as lite from "../../gen/job/v1/job_lite.ts";
import { LITE_PATH, liteSource } from "../../scripts/gen_lite.ts";

Deno.test("job_lite.ts is up to date with job_pb.ts (run deno task gen)", async () => {
  assert.equal(await Deno.readTextFile(LITE_PATH), liteSource());
});

Deno.test("the lite enums equal job_pb.ts's, both ways", () => {
  const pairs = [
    [lite.JobState, pb.JobState],
    [lite.EventType, pb.EventType],
    [lite.StreamType, pb.StreamType],
    [lite.ProcessType, pb.ProcessType],
  ] as const;
  for (const [mine, theirs] of pairs) assert.deepEqual({ ...mine }, { ...theirs });
});
