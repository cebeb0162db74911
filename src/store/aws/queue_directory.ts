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
import {
  bandQueueName,
  BANDS_HIGHEST_FIRST,
  type PriorityBand,
  reservedQueueNameProblem,
} from "./priority_bands.ts";
import { InvalidArgumentError } from "../../protocol/invalid_argument.ts";

/** How long a band queue found missing is not looked up again (an older deployment has none). */
const MISSING_BAND_TTL_MS = 60_000;

/** Resolves airunner queue names to SQS queue URLs. */
export class QueueDirectory {
  readonly #sqs: SQSClient;
  readonly #prefix: string;
  readonly #urls = new Map<string, string>();
  /** Band queues found missing, with when to look again (Date.now() ms). */
  readonly #missingBands = new Map<string, number>();

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
   * The URL of `queue`'s SQS queue for priority band `band`.
   * @throws {QueueNotFoundError} when it does not exist, naming the priorities it serves.
   */
  async bandUrlOf(queue: string, band: PriorityBand, signal?: AbortSignal): Promise<string> {
    const reserved = reservedQueueNameProblem(queue);
    if (reserved !== undefined) throw new InvalidArgumentError("queue", reserved);
    if (band === "normal") return await this.urlOf(queue, signal);
    const name = bandQueueName(queue, band);
    try {
      return await this.urlOf(name, signal);
    } catch (error) {
      if (!(error instanceof QueueNotFoundError)) throw error;
      throw new QueueNotFoundError(
        queue,
        `priorities ${band === "high" ? "above" : "below"} 0 need the SQS queue "${
          this.sqsNameOf(name)
        }"; create it with "airunner orchestrator init" (or infra/terraform), or give its URL with --sqs-queue ${name}=URL`,
      );
    }
  }

  /**
   * The band queues of `queue` that exist, highest first, with their URLs;
   * one found missing is left out for a minute before it is looked up again.
   */
  async bandUrls(
    queue: string,
    signal?: AbortSignal,
  ): Promise<{ band: PriorityBand; url: string }[]> {
    const found: { band: PriorityBand; url: string }[] = [];
    for (const band of BANDS_HIGHEST_FIRST) {
      const key = bandQueueName(queue, band);
      if (band !== "normal" && (this.#missingBands.get(key) ?? 0) > Date.now()) continue;
      try {
        found.push({ band, url: await this.bandUrlOf(queue, band, signal) });
      } catch (error) {
        if (band === "normal" || !(error instanceof QueueNotFoundError)) throw error;
        this.#missingBands.set(key, Date.now() + MISSING_BAND_TTL_MS);
      }
    }
    return found;
  }

  /** Forgets `queue`'s band queue (found deleted): it is left out for a while, then looked up again. */
  forgetBand(queue: string, band: PriorityBand): void {
    const name = bandQueueName(queue, band);
    this.#urls.delete(name);
    this.#missingBands.set(name, Date.now() + MISSING_BAND_TTL_MS);
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
