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

/** Whether two enqueues with one request_id ask for the same job. */
export function sameJobParams(stored: JobParams, requested: JobParams): boolean {
  return equals(JobParamsSchema, withoutProvenance(stored), withoutProvenance(requested));
}

function withoutProvenance(params: JobParams): JobParams {
  if (!PROVENANCE_METADATA_KEYS.some((key) => key in params.metadata)) return params;
  const metadata = { ...params.metadata };
  for (const key of PROVENANCE_METADATA_KEYS) delete metadata[key];
  return create(JobParamsSchema, { ...params, metadata });
}
