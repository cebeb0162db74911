/**
 * Receiving SQS messages for a dequeue: one ReceiveMessage that a caller
 * may give up on without losing what it brings, and the rounds over a
 * queue's priority bands (priority_bands.ts), highest first.
 *
 * @module
 */
import { type Message, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { isQueueMissing } from "./aws_errors.ts";
import type { PriorityBand } from "./priority_bands.ts";
import { changeVisibility } from "./sqs_messages.ts";
import type { AwsStoreContext } from "./store_context.ts";

/** A message and the SQS queue it came from. */
export interface Received {
  readonly url: string;
  readonly message: Message;
}

/** A long poll of one band that is still out, or has answered and not been taken. */
interface Poll {
  readonly band: PriorityBand;
  readonly url: string;
  readonly receiving: Promise<Message[]>;
  settled: boolean;
  messages: Message[];
  error: unknown;
}

/**
 * The rounds of receives of one dequeue call over a queue's bands. With
 * band queues, each band is first asked without waiting, highest first,
 * and the first that has messages answers, so a waiting job of a higher
 * band goes before any lower one. (A short poll samples some of SQS's
 * servers: under light load it can miss a message, which a long poll then
 * finds.) When none has any, every band is long-polled, and the first
 * answer ends the round, with whatever the others have answered by then;
 * a poll still out carries over to the next round instead of being
 * started again, so a dequeue holds at most one poll per band. When the
 * dequeue ends, polls still out run on, and whatever they bring is made
 * visible again at once ({@link close}). They are not cancelled: SQS keeps
 * a long poll whose client went away, and a message it takes then stays
 * invisible for the whole visibility timeout.
 */
export class BandReceiver {
  readonly #polls = new Map<string, Poll>();

  constructor(
    private readonly ctx: AwsStoreContext,
    private readonly queue: string,
    private readonly max: number,
    private readonly visibilitySeconds: number,
  ) {}

  /** One round over `bands` (highest first), waiting up to `waitSeconds`, or until `signal` aborts. */
  async round(
    bands: readonly { readonly band: PriorityBand; readonly url: string }[],
    waitSeconds: number,
    signal: AbortSignal,
  ): Promise<Received[]> {
    const { ctx, max, visibilitySeconds } = this;
    const tagged = (url: string, messages: Message[]) =>
      messages.map((message) => ({ url, message }));
    if (bands.length === 1 && this.#polls.size === 0) {
      const { url } = bands[0]!;
      return tagged(url, await receive(ctx, url, max, visibilitySeconds, waitSeconds, signal));
    }
    if (this.#polls.size === 0) {
      for (const { url } of bands) {
        const messages = await receive(ctx, url, max, visibilitySeconds, 0, signal);
        if (messages.length > 0) return tagged(url, messages);
      }
    }
    for (const { band, url } of bands) {
      if (!this.#polls.has(url)) this.#polls.set(url, this.#longPoll(band, url, waitSeconds));
    }
    await firstSettled([...this.#polls.values()], signal);
    // Taken in band order: whatever has answered by now, the rest carry over.
    const answered: Received[] = [];
    let failure: unknown;
    for (const { url } of bands) {
      const poll = this.#polls.get(url);
      if (poll === undefined || !poll.settled) continue;
      this.#polls.delete(url);
      if (poll.error === undefined) answered.push(...tagged(url, poll.messages));
      else if (poll.band !== "normal" && isQueueMissing(poll.error)) {
        // A band queue deleted since it was found: the queue goes on without it.
        ctx.queues.forgetBand(this.queue, poll.band);
      } else failure ??= poll.error;
    }
    if (answered.length === 0 && failure !== undefined) throw failure;
    return answered;
  }

  /** Ends the dequeue's rounds: what polls still out bring goes back at once. */
  close(): void {
    for (const poll of this.#polls.values()) {
      void releaseWhenDone(this.ctx, poll.url, poll.receiving);
    }
    this.#polls.clear();
  }

  #longPoll(band: PriorityBand, url: string, waitSeconds: number): Poll {
    const receiving = rawReceive(this.ctx, url, this.max, this.visibilitySeconds, waitSeconds);
    const poll: Poll = {
      band,
      url,
      receiving,
      settled: false,
      messages: [],
      error: undefined,
    };
    receiving.then(
      (messages) => {
        poll.settled = true;
        poll.messages = messages;
      },
      (error) => {
        poll.settled = true;
        poll.error = error ?? new Error("SQS ReceiveMessage failed");
      },
    );
    return poll;
  }
}

/** Resolves once one of `polls` has settled, or `signal` aborts. */
async function firstSettled(polls: readonly Poll[], signal: AbortSignal): Promise<void> {
  if (signal.aborted || polls.some((poll) => poll.settled)) return;
  let onAbort = () => {};
  const aborted = new Promise<void>((resolve) => {
    onAbort = () => resolve();
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([
      aborted,
      ...polls.map((poll) => poll.receiving.then(() => {}, () => {})),
    ]);
    // Let the settle callbacks of polls that answered together run first.
    await Promise.resolve();
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** One ReceiveMessage as SQS answers it, given up only when the store closes. */
function rawReceive(
  ctx: AwsStoreContext,
  queueUrl: string,
  maxMessages: number,
  visibilitySeconds: number,
  waitSeconds: number,
): Promise<Message[]> {
  return ctx.call("SQS ReceiveMessage", () =>
    ctx.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: maxMessages,
        VisibilityTimeout: visibilitySeconds,
        WaitTimeSeconds: waitSeconds,
        MessageSystemAttributeNames: ["SentTimestamp"],
      }),
      ctx.abort(),
    )).then((out) => out?.Messages ?? []);
}

/**
 * One ReceiveMessage. If `signal` aborts first this resolves with no
 * messages at once; the receive itself runs on, and whatever it brings is
 * made visible again right away, so an abandoned wait loses no job.
 */
export function receive(
  ctx: AwsStoreContext,
  queueUrl: string,
  maxMessages: number,
  visibilitySeconds: number,
  waitSeconds: number,
  signal: AbortSignal,
): Promise<Message[]> {
  const receiving = rawReceive(ctx, queueUrl, maxMessages, visibilitySeconds, waitSeconds);
  if (signal.aborted) {
    void releaseWhenDone(ctx, queueUrl, receiving);
    return Promise.resolve([]);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      void releaseWhenDone(ctx, queueUrl, receiving);
      resolve([]);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    receiving.then(
      (messages) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) return; // already resolved and released
        resolve(messages);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        if (!signal.aborted) reject(error);
      },
    );
  });
}

export async function releaseWhenDone(
  ctx: AwsStoreContext,
  queueUrl: string,
  receiving: Promise<Message[]>,
): Promise<void> {
  try {
    for (const message of await receiving) {
      await changeVisibility(ctx, queueUrl, message.ReceiptHandle ?? "", 0);
    }
  } catch {
    // Closing, or SQS failed: the messages come back when their visibility ends.
  }
}
