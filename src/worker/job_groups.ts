/**
 * Job processes never outlive their worker. Each worker starts one small
 * `sh`, the **watcher**, in a session of its own, whose stdin is a pipe
 * from the worker. The worker writes `+ PGID JOB ATTEMPT` when a job's
 * process group starts and `- PGID` once it is gone. When the worker dies,
 * however it dies (kill -9 included), the kernel closes the pipe; the
 * watcher reads end of file and sends SIGKILL to every group still listed,
 * within milliseconds. One process per worker, started once: a job's start
 * costs a line on a pipe, no extra process (issue 24 targets spawn speed).
 *
 * The watcher also keeps the **ledger** (group_ledger.ts) in the state
 * directory, for the case it dies too (a `kill -9` of the worker's whole
 * process group, the OOM killer): the next worker on the same workspace
 * root kills what it lists before it claims anything (leftover_groups.ts).
 * The watcher writes it, not the worker, because it can read each leader's
 * start time from /proc (Deno reads /proc only with --allow-all).
 *
 * The watcher ignores SIGHUP, SIGINT, SIGTERM and SIGQUIT (Ctrl-C in the
 * worker's terminal, a stop of the worker's group) and so outlives any death
 * but SIGKILL. On Linux it also kills the groups of each listed leader's
 * direct children, which is where a pty job runs: script(1) starts the
 * command in a session of its own on the terminal.
 *
 * @module
 */
import type { Logger } from "../logger.ts";

/**
 * The watcher (POSIX sh; `$1` is the state directory). It keeps the live
 * groups as " PGID:TICKS:JOB:ATTEMPT ..." and acts only on lines whose
 * group is digits, so nothing the worker did not mean is ever killed.
 * `ticks` reads field 22 of /proc/<pid>/stat, counted after the last ")"
 * (the command name may hold anything), 0 where it cannot.
 */
export const WATCHER_SCRIPT = `trap '' HUP INT TERM QUIT PIPE
ticks() {
  t=0
  if read -r s 2>/dev/null < "/proc/$1/stat"; then
    s=\${s##*) }
    set -- $s
    t=\${20:-0}
    case $t in *[!0-9]*) t=0 ;; esac
  fi
}
ledger=
ticks "$PPID"
if [ "$t" != 0 ] && [ -d "$1" ]; then
  ledger="$1/worker-$PPID-$t-$$.groups"
  : > "$ledger" || ledger=
fi
live=' '
lines=0
while read -r op g job attempt; do
  case $g in ''|*[!0-9]*) continue ;; esac
  case $op in
    +)
      ticks "$g"
      live="$live$g:$t:$job:$attempt "
      [ -n "$ledger" ] && echo "+ $g $t $job $attempt" >> "$ledger"
      ;;
    -)
      case $live in *" $g:"*)
        rest=\${live#* $g:}
        live="\${live%% $g:*} \${rest#* }"
        [ -n "$ledger" ] && echo "- $g" >> "$ledger"
        ;;
      esac
      ;;
  esac
  lines=$((lines + 1))
  if [ -n "$ledger" ] && { [ "$live" = ' ' ] || [ $lines -ge 10000 ]; }; then
    # Keep the ledger short: only what runs now, replaced in one rename.
    for e in $live; do
      IFS=:
      set -- $e
      unset IFS
      echo "+ $1 $2 $3 $4"
    done > "$ledger.new" && mv -f "$ledger.new" "$ledger"
    lines=0
  fi
done
for e in $live; do
  g=\${e%%:*}
  kids=
  [ -r /proc/$g/task/$g/children ] && read -r kids < /proc/$g/task/$g/children
  kill -9 -$g 2>/dev/null
  for k in $kids; do kill -9 -$k 2>/dev/null; done
done
[ -n "$ledger" ] && rm -f "$ledger"
`;

/** What job execution tells about the process groups it starts and ends. */
export interface JobGroups {
  /** A job's command started as the leader of group `pgid`. */
  started(pgid: number, jobId: string, attempt: number): void;
  /** Group `pgid` was killed after its leader exited: nothing of it runs. */
  ended(pgid: number): void;
}

/** The job groups of a running worker; `close` once every job has ended. */
export interface WorkerJobGroups extends JobGroups {
  close(): Promise<void>;
}

const IS_WINDOWS = Deno.build.os === "windows";

/**
 * Starts the watcher of one worker. `stateDir` is where its ledger goes
 * (`<workspace-root>/.running`, made here). On Windows, where jobs have no
 * process group, it does nothing.
 */
export function openJobGroups(stateDir: string, logger: Logger): WorkerJobGroups {
  if (IS_WINDOWS) {
    return { started() {}, ended() {}, close: () => Promise.resolve() };
  }
  Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const watcher = startWatcher(stateDir);
  const writer = watcher.stdin.getWriter();
  const encoder = new TextEncoder();
  let closing = false;
  // Writes go out in order; one that fails means the watcher is gone, said below.
  const tell = (line: string) => void writer.write(encoder.encode(line)).catch(() => {});
  const watcherExit = watcher.status.then((status) => {
    if (!closing) {
      logger.warn(
        { code: status.code, signal: status.signal },
        "the job group watcher exited; if this worker is killed, its jobs run on until a worker starts on the same workspace root",
      );
    }
  });
  return {
    started(pgid, jobId, attempt) {
      // The ledger is split on spaces and colons; job ids are UUIDs, anything else goes unnamed.
      const name = /^[\w-]{1,128}$/.test(jobId) ? jobId : "-";
      tell(`+ ${pgid} ${name} ${attempt}\n`);
    },
    ended(pgid) {
      tell(`- ${pgid}\n`);
    },
    async close() {
      if (closing) return;
      closing = true;
      watcher.ref(); // unref'd while it runs; now the end of its exit must be awaited
      await writer.close().catch(() => {});
      await watcherExit;
    },
  };
}

let setsidLookup: string | null | undefined;

function startWatcher(stateDir: string): Deno.ChildProcess {
  setsidLookup ??= ["/usr/bin/setsid", "/bin/setsid"].find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  }) ?? null;
  const setsid = setsidLookup ?? undefined;
  const child = new Deno.Command(setsid ?? "/bin/sh", {
    args: [
      ...(setsid === undefined ? [] : ["/bin/sh"]),
      "-c",
      WATCHER_SCRIPT,
      "watcher",
      stateDir,
    ],
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin" },
    stdin: "piped",
    stdout: "null",
    stderr: "null",
    // A session of its own, so a signal to the worker's group passes it by.
    detached: setsid === undefined,
  }).spawn();
  // The worker may exit without closing it (an uncaught error): the pipe closes then anyway.
  child.unref();
  return child;
}
