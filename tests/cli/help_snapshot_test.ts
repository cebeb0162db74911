/**
 * The --help of every command is pinned: a change to the CLI's surface shows
 * up in review as a change to these files.
 */
import { runAirunner } from "../support/airunner_process.ts";
import { assertSnapshot } from "../support/snapshot.ts";

const COMMANDS = [
  "server",
  "worker",
  "submit",
  "monitor",
  "logs",
  "wait",
  "list",
  "get",
  "cancel",
  "redrive",
  "rerun",
  "schedule",
  "token",
  "orchestrator",
  "dev",
  "backup",
  "completion",
];

Deno.test("--help texts are pinned", async () => {
  // A fixed environment: defaults shown in help must not depend on the machine.
  const env = {
    HOME: "/home/user",
    XDG_DATA_HOME: "/home/user/.local/share",
    TMPDIR: "/tmp",
    COLUMNS: "100",
  };
  const main = await runAirunner(["--help"], { env });
  await assertSnapshot("help-airunner.txt", main.stdout);
  const all = await Promise.all(COMMANDS.map((c) => runAirunner([c, "--help"], { env })));
  for (const [i, result] of all.entries()) {
    await assertSnapshot(`help-${COMMANDS[i]}.txt`, result.stdout);
  }
  // schedule add takes submit's job flags, less those that make no sense for a schedule.
  const scheduleAdd = await runAirunner(["schedule", "add", "--help"], { env });
  await assertSnapshot("help-schedule-add.txt", scheduleAdd.stdout);
});
