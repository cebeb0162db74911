/**
 * The enums of gen/job/v1/job_lite.ts equal job_pb.ts's (that the file is
 * current is tests/contract_test.ts's "gen/ matches what proto/ generates").
 */
import assert from "node:assert/strict";
import * as pb from "../../gen/job/v1/job_pb.ts";
import * as lite from "../../gen/job/v1/job_lite.ts";

Deno.test("the lite enums equal job_pb.ts's, both ways", () => {
  const pairs = [
    [lite.JobState, pb.JobState],
    [lite.EventType, pb.EventType],
    [lite.StreamType, pb.StreamType],
    [lite.ProcessType, pb.ProcessType],
  ] as const;
  for (const [mine, theirs] of pairs) assert.deepEqual({ ...mine }, { ...theirs });
});
