/**
 * Ctrl-C and SIGTERM handling for long-running commands: the first signal
 * asks for a graceful stop, a second one for an immediate stop.
 *
 * @module
 */

/** Calls `graceful` on the first SIGINT/SIGTERM and `immediate` on the next; returns an unsubscribe. */
export function onShutdownSignals(graceful: () => void, immediate: () => void): () => void {
  let received = 0;
  const handler = () => {
    received++;
    if (received === 1) graceful();
    else immediate();
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, handler);
  return () => {
    for (const signal of signals) Deno.removeSignalListener(signal, handler);
  };
}
