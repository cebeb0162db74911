/**
 * Request streams for client-streaming calls in tests.
 *
 * @module
 */

/** A stream of exactly one message. */
export async function* once<T>(value: T): AsyncGenerator<T> {
  yield value;
}
