import assert from "node:assert/strict";
import { METRICS } from "../../src/telemetry/metrics.ts";

Deno.test("specs/observability.md documents every metric airunner records", async () => {
  const spec = await Deno.readTextFile(new URL("../../specs/observability.md", import.meta.url));
  for (const [name, metric] of Object.entries(METRICS)) {
    assert.match(
      spec,
      new RegExp(
        `\\| \`${name.replaceAll(".", "\\.")}\` +\\| ${metric.kind} +\\| ${
          metric.unit.replace(/[{}]/g, "\\$&")
        } `,
      ),
    );
  }
});
