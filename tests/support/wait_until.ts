/**
 * Polls `check` until it holds, for things that happen after the moment a
 * test can observe (a worker removes a checkout after it reports the job).
 * Throws `what` (or what it returns, read at the time) when it does not hold within `timeoutMs`.
 */
export async function waitUntil(
  check: () => boolean,
  what: string | (() => string) = "the condition did not hold in time",
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(typeof what === "string" ? what : what());
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
