/** `submit`'s flags as commander gives them with nothing on the command line, plus `extra`. */
import type { SubmitFlags } from "../../src/cli/submit.ts";

export const submitFlags = (extra: Partial<SubmitFlags> = {}): SubmitFlags => ({
  arg: [],
  env: [],
  secretEnv: [],
  metadata: [],
  follow: false,
  wait: false,
  json: false,
  cancelOnInterrupt: false,
  ...extra,
});
