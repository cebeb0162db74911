/**
 * Yielding to the event loop.
 *
 * @module
 */
import { setImmediate } from "node:timers";

/**
 * Resolves after the event loop has polled I/O once and run what was ready:
 * long work yields here so requests are served in between, and a reader
 * waits here so that messages which arrived together are handled together.
 *
 * `setImmediate`, not `setTimeout(0)`: Deno clamps a zero timer to 1 ms and
 * an idle process then sleeps about 2 ms in the kernel before it fires,
 * which every job paid on the worker session's push and apply paths.
 * `scripts/bench` measures the difference as pickup latency.
 */
export function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
