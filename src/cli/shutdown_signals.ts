/**
 * Ctrl-C and SIGTERM handling for long-running commands: each signal takes
 * the next, firmer step (finish gracefully, then stop now, then exit).
 *
 * @module
 */

/**
 * Calls `steps[0]` on the first SIGINT/SIGTERM, `steps[1]` on the second,
 * and so on; the last step repeats. Returns an unsubscribe function.
 */
export function onShutdownSignals(...steps: (() => void)[]): () => void {
  let received = 0;
  const handler = () => {
    const step = steps[Math.min(received, steps.length - 1)];
    received++;
    step?.();
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, handler);
  return () => {
    for (const signal of signals) Deno.removeSignalListener(signal, handler);
  };
}
