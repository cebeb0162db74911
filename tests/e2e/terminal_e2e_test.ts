/**
 * The terminal views, run in a real pseudo-terminal (script(1)): monitor's
 * fixed header above the live output, and list --watch, which gives the
 * terminal back as it found it when stopped with Ctrl-C.
 */
import assert from "node:assert/strict";
import { airunnerCommandLine, runAirunner, startDev } from "../support/airunner_process.ts";
import { shellQuote } from "../../src/worker/pty.ts";
import { renderScreen } from "../support/vt_screen.ts";

/** Runs `shellCommand` in a COLUMNSx30 pty; returns what the terminal received and the exit code. */
async function inTerminal(shellCommand: string, env: Record<string, string>, columns = 100) {
  // The caller's NO_COLOR (a CI setting, say) must not leak in: colour is under test.
  const { NO_COLOR: _inherited, ...inherited } = Deno.env.toObject();
  const out = await new Deno.Command("script", {
    args: ["-q", "-e", "-f", "-c", `stty cols ${columns} rows 30; ${shellCommand}`, "/dev/null"],
    env: { ...inherited, ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  return { code: out.code, screen: new TextDecoder().decode(out.stdout) };
}

function airunnerShell(...args: string[]): string {
  return airunnerCommandLine(args).map(shellQuote)
    .join(" ");
}

Deno.test("monitor and list --watch render in a terminal and exit cleanly", async () => {
  await using dev = await startDev({ prefix: "airunner-tty-" });
  const { server } = dev;
  const env = { AIRUNNER_SERVER: server, TERM: "xterm-256color" };
  // A schedule's job, run by hand: the header names its schedule and priority.
  const added = await runAirunner([
    "schedule",
    "add",
    "nightly",
    "--server",
    server,
    "--cron",
    "0 3 * * *",
    "--paused",
    "--priority",
    "3",
    "--",
    "sh",
    "-c",
    "printf '\\033[31mred\\033[0m\\n'; sleep 1; echo done; exit 3",
  ]);
  assert.equal(added.code, 0, added.stderr);
  const submitted = await runAirunner(["schedule", "run", "nightly", "--server", server]);
  assert.equal(submitted.code, 0, submitted.stderr);
  const id = submitted.stdout.trim();

  const monitor = await inTerminal(airunnerShell("monitor", id), env);
  assert.equal(monitor.code, 3);
  assert.ok(monitor.screen.includes("\x1b[3;30r"), "the output scrolls below a fixed header");
  assert.match(
    monitor.screen,
    new RegExp(`job ${id}.*queue default  schedule nightly  priority 3`),
  );
  assert.match(monitor.screen, /exit 3/);
  assert.ok(monitor.screen.includes("\x1b[31mred\x1b[0m"), "the job's colours pass through");
  assert.ok(monitor.screen.includes("\x1b[r"), "the whole screen scrolls again at the end");
  assert.ok(monitor.screen.includes("\x1b[1m"), "the header is styled");
  const plainColours = await inTerminal(airunnerShell("monitor", id), { ...env, NO_COLOR: "1" });
  assert.ok(!plainColours.screen.includes("\x1b[1m"), "NO_COLOR turns our styling off");

  const watch = await inTerminal(
    `${airunnerShell("list", "--watch")} & pid=$!; sleep 3; kill -INT $pid; wait $pid`,
    env,
  );
  assert.equal(watch.code, 0);
  assert.ok(watch.screen.includes("\x1b[?1049h"), "drawn on the alternate screen");
  assert.match(watch.screen, /ID +QUEUE +STATE +COMMAND +AGE +DURATION +EXIT/);
  assert.ok(
    watch.screen.indexOf("\x1b[?1049l") > watch.screen.indexOf("\x1b[?1049h"),
    "screen restored",
  );
  assert.ok(watch.screen.includes("\x1b[?25h"), "cursor shown again");

  // A row redrawn shorter ("failed" where "running" stood) leaves no stale
  // characters: the screen, as a person sees it just before Ctrl-C.
  const shrinking = await runAirunner([
    "submit",
    "--server",
    server,
    "--",
    "sh",
    "-c",
    "sleep 3; exit 3",
  ]);
  const shrinkingId = shrinking.stdout.trim();
  const redraws = await inTerminal(
    `${airunnerShell("list", "--watch")} & pid=$!; sleep 6; kill -INT $pid; wait $pid`,
    env,
    160,
  );
  const lastFrame = redraws.screen.slice(0, redraws.screen.lastIndexOf("\x1b[?1049l"));
  const rows = renderScreen(lastFrame, 160);
  const row = rows.find((r) => r.startsWith(shrinkingId));
  assert.ok(row !== undefined, rows.join("\n"));
  assert.match(row, /^\S+ +default +failed +sh -c 'sleep 3; exit 3' +\d+s +\d+s +3$/, row);
  assert.ok(redraws.screen.includes("running"), "it was drawn running first");

  await dev.stop();
});
