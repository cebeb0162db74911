/**
 * Yielding to the event loop.
 *
 * @module
 */

/**
 * Resolves after the event loop has run what is ready, I/O included: long
 * work yields here so requests are served in between, and a reader waits
 * here so that messages which arrived together are handled together.
 */
export function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
