/**
 * The error every request check throws, and the range check most of them
 * share (pure). request_validation.ts re-exports the error for callers.
 *
 * @module
 */

/** A request field breaks a rule; `field` is its path in the request, as in the proto. */
export class InvalidArgumentError extends Error {
  constructor(readonly field: string, readonly problem: string) {
    super(`${field}: ${problem}`);
    this.name = "InvalidArgumentError";
  }
}

/** Refuses `value` unless it is a whole number within min..max, naming `field`. */
export function checkRange(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `is ${value}, outside ${min}..${max}`);
  }
}
