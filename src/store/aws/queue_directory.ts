/**
 * Which SQS queue serves each airunner queue: a URL configured for the name
 * (`--sqs-queue NAME=URL`, or AIRUNNER_SQS_QUEUE_<NAME> with the name upper
 * case and "-" as "_"), else the queue named
 * `<prefix><name>`, looked up once with GetQueueUrl and remembered.
 *
 * @module
 */
import { GetQueueUrlCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { QueueNotFoundError } from "../errors.ts";
import { asStoreError, isQueueMissing } from "./aws_errors.ts";
import { environmentKeyOf } from "./queue_env.ts";

/** Resolves airunner queue names to SQS queue URLs. */
export class QueueDirectory {
  readonly #sqs: SQSClient;
  readonly #prefix: string;
  readonly #urls = new Map<string, string>();

  constructor(sqs: SQSClient, configured: ReadonlyMap<string, string>, prefix: string) {
    this.#sqs = sqs;
    this.#prefix = prefix;
    for (const [name, url] of configured) this.#urls.set(name, url);
  }

  /** The SQS name a queue without a configured URL must have. */
  sqsNameOf(queue: string): string {
    return `${this.#prefix}${queue}`;
  }

  /**
   * The URL of `queue`'s SQS queue.
   * @throws {QueueNotFoundError} when it is not configured and does not exist.
   */
  async urlOf(queue: string, signal?: AbortSignal): Promise<string> {
    const known = this.#urls.get(queue) ?? this.#urls.get(environmentKeyOf(queue));
    if (known !== undefined) return known;
    const name = this.sqsNameOf(queue);
    try {
      const { QueueUrl } = await this.#sqs.send(
        new GetQueueUrlCommand({ QueueName: name }),
        signal === undefined ? {} : { abortSignal: signal },
      );
      if (QueueUrl === undefined) throw new Error("GetQueueUrl returned no URL");
      this.#urls.set(queue, QueueUrl);
      return QueueUrl;
    } catch (error) {
      if (isQueueMissing(error)) {
        throw new QueueNotFoundError(
          queue,
          `no SQS queue "${name}"; create it with "airunner orchestrator init" or give its URL with --sqs-queue ${queue}=URL`,
        );
      }
      throw asStoreError("SQS GetQueueUrl", error);
    }
  }
}
