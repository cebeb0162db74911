/**
 * The encoding of the execution config jobs carry, kept: jobs almost always
 * carry the server's one config, so its encoding is kept rather than redone
 * per job.
 *
 * @module
 */
import { clone, equals, toBinary } from "@bufbuild/protobuf";
import { type ExecutionConfig, ExecutionConfigSchema } from "../../../gen/job/v1/job_pb.ts";

/** The last config encoded, and its bytes. */
export class EncodedConfigCache {
  #last:
    | {
      /** The object last given (usually the server's one config, passed each time). */
      readonly given: ExecutionConfig;
      /** A copy of it, for comparing after the caller changed its object. */
      readonly config: ExecutionConfig;
      readonly bytes: Uint8Array;
    }
    | undefined;

  /** The protobuf encoding of `config`. */
  bytesOf(config: ExecutionConfig): Uint8Array {
    const cached = this.#last;
    if (
      cached !== undefined &&
      (cached.given === config || equals(ExecutionConfigSchema, cached.config, config))
    ) {
      return cached.bytes;
    }
    const bytes = toBinary(ExecutionConfigSchema, config);
    this.#last = { given: config, config: clone(ExecutionConfigSchema, config), bytes };
    return bytes;
  }
}
