/**
 * The execution settings a server hands to workers with every job (the wire
 * contract's EventBatcher defaults).
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { type ExecutionConfig, ExecutionConfigSchema } from "../../gen/job/v1/job_pb.ts";
import { DEFAULT_MAX_JOB_OUTPUT_BYTES } from "../store/output_cap.ts";

/** Flush a batch this long after its first item. */
export const DEFAULT_FLUSH_INTERVAL_SECONDS = 2;
/** Flush a batch once it holds this many items. */
export const DEFAULT_MAX_BATCH_SIZE = 50;
/** Flush a batch once it holds this many bytes (an item counts its length + 16). */
export const DEFAULT_MAX_BATCH_BYTES = 256 * 1024;
/** Replay pace hint for clients that play a batch back. */
export const DEFAULT_PLAYBACK_INTERVAL_MILLIS = 50;
/** Publish a heartbeat this often while a job runs. */
export const DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 30;
/** Flush buffered output once the command has been quiet this long. */
export const DEFAULT_OUTPUT_FLUSH_INTERVAL_MILLIS = 100;

/**
 * The execution config the server gives every job. `maxJobOutputBytes` is
 * the store's output cap (0: none), told to workers so that they stop
 * sending output the store would drop.
 */
export function defaultExecutionConfig(
  maxJobOutputBytes = DEFAULT_MAX_JOB_OUTPUT_BYTES,
): ExecutionConfig {
  return create(ExecutionConfigSchema, {
    batching: {
      flushIntervalSeconds: DEFAULT_FLUSH_INTERVAL_SECONDS,
      maxBatchSize: DEFAULT_MAX_BATCH_SIZE,
      maxBatchBytes: BigInt(DEFAULT_MAX_BATCH_BYTES),
      playbackIntervalMillis: DEFAULT_PLAYBACK_INTERVAL_MILLIS,
    },
    heartbeatIntervalSeconds: DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    outputFlushIntervalMillis: DEFAULT_OUTPUT_FLUSH_INTERVAL_MILLIS,
    maxOutputBytes: BigInt(maxJobOutputBytes),
  });
}
