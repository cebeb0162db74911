/**
 * The form of a job id on the wire: a UUID (the stores mint version 7).
 *
 * @module
 */

/** True when `value` is a UUID string in canonical lower- or upper-case form. */
export function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}
