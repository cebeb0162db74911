/**
 * The shared options (common_options.ts) as commander Options, for the
 * commands that are built with commander directly.
 *
 * @module
 */
import {
  CA_CERT_OPTION,
  CALL_TIMEOUT_OPTION,
  LISTEN_OPTION,
  LOG_LEVEL_OPTION,
  queueOptionSpec,
  SERVER_OPTION,
  SUBMIT_CALL_TIMEOUT_OPTION,
  TOKEN_OPTION,
} from "./common_options.ts";
import { typedOptionOf } from "./commander_of.ts";

/** `--server URL`. */
export const serverOption = () => typedOptionOf(SERVER_OPTION);
/** `--log-level LEVEL`. */
export const logLevelOption = () => typedOptionOf(LOG_LEVEL_OPTION);
/** `--listen HOST:PORT`. */
export const listenOption = () => typedOptionOf(LISTEN_OPTION);
/** `--queue NAME`. */
export const queueOption = (description?: string) => typedOptionOf(queueOptionSpec(description));
/** `--token TOKEN`. */
export const tokenOption = () => typedOptionOf(TOKEN_OPTION);
/** `--ca-cert FILE`. */
export const caCertOption = () => typedOptionOf(CA_CERT_OPTION);
/** `--timeout DURATION` (the call deadline). */
export const callTimeoutOption = () => typedOptionOf(CALL_TIMEOUT_OPTION);
/** `--call-timeout DURATION` (submit's call deadline). */
export const submitCallTimeoutOption = () => typedOptionOf(SUBMIT_CALL_TIMEOUT_OPTION);
