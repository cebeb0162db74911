/**
 * When a repeated enqueue with the same request_id is the same job (pure
 * logic, shared by every backend).
 *
 * @module
 */
import { create, equals } from "@bufbuild/protobuf";
import { type JobParams, JobParamsSchema } from "../../gen/job/v1/job_pb.ts";

/**
 * Metadata that says where a request came from, not what the job is: a
 * retried submit in a new process carries a new trace context.
 */
const PROVENANCE_METADATA_KEYS = ["traceparent", "tracestate"];

/**
 * Whether two enqueues with one request_id ask for the same job. Secret
 * values are not compared, only their names: an answer that told a repeat
 * with another value apart would let any submitter who knows a request_id
 * test guesses of a secret it cannot read.
 */
export function sameJobParams(stored: JobParams, requested: JobParams): boolean {
  return equals(JobParamsSchema, comparable(stored), comparable(requested));
}

function comparable(params: JobParams): JobParams {
  const secretNames = Object.keys(params.secretEnvironment);
  const hasProvenance = PROVENANCE_METADATA_KEYS.some((key) => key in params.metadata);
  if (!hasProvenance && secretNames.length === 0) return params;
  const metadata = { ...params.metadata };
  for (const key of PROVENANCE_METADATA_KEYS) delete metadata[key];
  const secretEnvironment = Object.fromEntries(secretNames.map((name) => [name, ""]));
  return create(JobParamsSchema, { ...params, metadata, secretEnvironment });
}
