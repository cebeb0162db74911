/**
 * Limits on what a client may send. Each is enforced at the RPC edge with an
 * InvalidArgument error that names the field and the limit; nothing is
 * written when a request breaks one. specs/architecture.md lists them.
 * A worker session's limits are in session.ts.
 *
 * @module
 */

/** Longest queue name; queue names use [A-Za-z0-9_-] (what SQS allows). */
export const MAX_QUEUE_NAME_LENGTH = 64;
/** Longest request_id (idempotency key). */
export const MAX_REQUEST_ID_LENGTH = 256;
/** Longest command, in characters. */
export const MAX_COMMAND_LENGTH = 4096;
/** Most arguments. */
export const MAX_ARGS = 1024;
/** Longest single argument, in characters. */
export const MAX_ARG_LENGTH = 64 * 1024;
/** Most environment or metadata entries. */
export const MAX_MAP_ENTRIES = 256;
/** Longest environment or metadata key. */
export const MAX_MAP_KEY_LENGTH = 256;
/** Longest environment or metadata value. */
export const MAX_MAP_VALUE_LENGTH = 32 * 1024;
/** Longest repository, commit, branch, owner or working directory. */
export const MAX_SHORT_STRING_LENGTH = 2048;
/** Longest job timeout: 7 days. */
export const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;
/** Longest visibility timeout: 12 hours, SQS's cap. */
export const MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200;
/** Default visibility timeout when a dequeue asks for <= 0. */
export const DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 300;
/** Most jobs one dequeue leases: 10, what one SQS receive returns. */
export const MAX_DEQUEUE_JOBS = 10;
/** Largest ListJobs page. */
export const MAX_PAGE_SIZE = 1000;
/** Most metadata pairs one ListJobs filter names. */
export const MAX_LIST_METADATA_FILTERS = 8;
/**
 * Longest metadata value a ListJobs filter can match: the embedded store
 * indexes the pairs up to this length only, so a job with 256 values of
 * 32 KiB does not write 8 MiB of index.
 */
export const MAX_FILTERABLE_METADATA_LENGTH = 256;
/** Most dependencies (JobParams.after and after_any together) of one job. */
export const MAX_DEPENDENCIES = 32;
/** Most schedules one store keeps. */
export const MAX_SCHEDULES = 1000;
/** Most schedules one owner (token subject) may have; admin is not limited. */
export const MAX_SCHEDULES_PER_OWNER = 100;
/**
 * Largest schedule, protobuf-encoded: every scheduler reads every schedule
 * once a second, so 1,000 of them stay within 64 MiB.
 */
export const MAX_SCHEDULE_BYTES = 64 * 1024;
/** Longest schedule name; names use [A-Za-z0-9._-], starting with a letter or digit. */
export const MAX_SCHEDULE_NAME_LENGTH = 64;
/** Default ListJobs page size when a request asks for <= 0. */
export const DEFAULT_PAGE_SIZE = 50;
/** Most events in one PublishJobEvents message. */
export const MAX_EVENTS_PER_PUBLISH = 1000;
/** Most jobs one EnqueueJobs call enqueues. */
export const MAX_ENQUEUE_BATCH = 1000;
/** Longest cancel reason. */
export const MAX_CANCEL_REASON_LENGTH = 1024;
/** Longest error message in a job result. */
export const MAX_ERROR_MESSAGE_LENGTH = 16 * 1024;
/** Longest worker name a worker gives for its attempts. */
export const MAX_WORKER_NAME_LENGTH = 256;
/**
 * Most entries a job's attempt list keeps: the first attempt and the newest
 * after it. Hand-backs use no retry and redrive gives a fresh budget, so a
 * job's attempts have no bound of their own; this keeps a job's record (on
 * AWS one DynamoDB item, at most 400 KB) from growing with them.
 */
export const MAX_RECORDED_ATTEMPTS = 100;
/** Most characters of an attempt entry's error message (the job's result keeps the whole one). */
export const MAX_ATTEMPT_ERROR_LENGTH = 512;
/** Most jobs one RedriveJobs call puts back (run it again for more). */
export const MAX_REDRIVE_JOBS = 1000;
/** Longest delayed start (JobParams.delay_ms, or run_at ahead of now): 366 days. */
export const MAX_START_DELAY_MS = 366 * 24 * 3600_000;
/** How far in the past a run_at may lie (clocks differ; a minute late is "now"). */
export const RUN_AT_PAST_TOLERANCE_MS = 60_000;
/** Lowest and highest JobParams.priority. */
export const MIN_PRIORITY = -100;
export const MAX_PRIORITY = 100;
/** Most retries of one job after its first attempt. */
export const MAX_RETRIES = 100;
/** Most exit-code ranges a retry policy lists. */
export const MAX_RETRY_EXIT_CODE_RANGES = 32;
/** Shortest wait a retry policy may ask for between attempts. */
export const MIN_RETRY_DELAY_MS = 100;
/** Longest wait a retry policy may ask for between attempts: one day. */
export const MAX_RETRY_DELAY_MS = 24 * 3600_000;
/** The first retry's wait when a policy names none (min_delay_ms 0). */
export const DEFAULT_RETRY_MIN_DELAY_MS = 1_000;
/** The longest wait between attempts when a policy names none (max_delay_ms 0). */
export const DEFAULT_RETRY_MAX_DELAY_MS = 5 * 60_000;
/** Largest request message, in bytes. */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
/**
 * Largest message a client reads or writes, in bytes: above the server's
 * own request limit, so that a client never refuses what a server may
 * rightly send, yet bounded, so that no server can make a client buffer
 * without end.
 */
export const MAX_CLIENT_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Most secret environment entries of one job (each one is searched for in all its output). */
export const MAX_SECRET_ENTRIES = 64;
/**
 * Longest secret value, in UTF-8 bytes: a private key or a kubeconfig fits;
 * the worker holds back at most this many bytes of output minus one while
 * it tells whether they are a secret.
 */
export const MAX_SECRET_VALUE_BYTES = 16 * 1024;
/** Most bytes of all secret values of one job together. */
export const MAX_SECRET_TOTAL_BYTES = 64 * 1024;
/**
 * Deepest nesting of objects and arrays in a JSON request message. No
 * job.v1 message nests deeper than about ten; the limit is checked by a
 * linear scan before JSON.parse, which would otherwise spend seconds and
 * hundreds of MiB on a few MB of brackets.
 */
export const MAX_JSON_DEPTH = 64;
/**
 * Longest a request body may stay silent (no byte arriving) while the
 * server waits for it: the rest of a unary body, the first message of a
 * stream, the rest of a message that has begun, the end of a
 * server-streaming request. The server then answers DeadlineExceeded and
 * ends the call. Default of the server's `bodyIdleTimeoutMs`.
 */
export const BODY_IDLE_TIMEOUT_MS = 30_000;
