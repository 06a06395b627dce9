/**
 * Storage queue triggers, as the Functions host runs them: poll with back-off up to maxPollingInterval, take
 * messages in batches, decode base64, hand the text and its metadata (dequeueCount, id, times) to the function.
 * Success deletes the message. Failure makes it visible again after visibilityTimeout; once it has been dequeued
 * maxDequeueCount times it moves to `<queue>-poison` and the move is logged. A message that is not base64 never
 * reaches the function and could never be decoded: it moves to `<queue>-poison` on its first delivery, as the host's
 * queue extension (v5) moves it. Nothing is dropped silently. (A message the function finds invalid is the
 * function's to move: shared/queue-handler.ts.)
 */
import type { DequeuedMessageItem, QueueClient } from "@azure/storage-queue";
import type { HostConfig } from "./host-config";

export interface QueueMessageForFunction {
  text: string;
  dequeueCount: number;
  id: string;
  popReceipt: string;
  insertionTime: Date;
  expirationTime: Date;
  nextVisibleTime: Date;
}

export interface QueueEvents {
  invoke(message: QueueMessageForFunction): Promise<void>;
  log(level: "information" | "warning" | "error", message: string): void;
}

/** How long a received message stays hidden while the function works on it (the host's lease is 10 minutes). */
const LEASE_SECONDS = 600;
const MIN_POLL_MS = 100;

export class InvalidQueueMessageError extends Error {
  constructor() {
    super("the message is not valid base64 (queue triggers expect base64-encoded messages)");
    this.name = "InvalidQueueMessageError";
  }
}

export function decodeMessage(raw: string, encoding: "base64" | "none"): string {
  if (encoding === "none") return raw;
  const trimmed = raw.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(trimmed) || trimmed.length % 4 !== 0) throw new InvalidQueueMessageError();
  return Buffer.from(trimmed, "base64").toString("utf8");
}

export class QueueListener {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private inFlight = new Set<Promise<void>>();
  private pollMs = MIN_POLL_MS;

  constructor(
    readonly functionName: string,
    private readonly queue: QueueClient,
    private readonly poison: QueueClient,
    private readonly config: HostConfig["queues"],
    private readonly events: QueueEvents,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  /** Poll now instead of waiting out the back-off (used after sending in tests and by the admin endpoint). */
  poke(): void {
    this.pollMs = MIN_POLL_MS;
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let received = 0;
      try {
        const capacity = this.config.batchSize + this.config.newBatchThreshold - this.inFlight.size;
        if (capacity > 0 && this.inFlight.size <= this.config.newBatchThreshold) {
          const res = await this.queue.receiveMessages({
            numberOfMessages: Math.min(this.config.batchSize, capacity),
            visibilityTimeout: LEASE_SECONDS,
          });
          received = res.receivedMessageItems.length;
          for (const item of res.receivedMessageItems) this.track(this.handle(item));
        }
      } catch (err) {
        if (!this.stopped) this.events.log("warning", `queue ${this.queue.name}: receive failed: ${(err as Error).message}`);
      }
      this.pollMs = received > 0 ? MIN_POLL_MS : Math.min(this.pollMs * 2, this.config.maxPollingIntervalMs);
      if (!this.stopped) await this.sleep(received > 0 ? 0 : this.pollMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private track(work: Promise<void>): void {
    const p = work.catch((err: Error) => this.events.log("error", `queue ${this.queue.name}: ${err.message}`));
    this.inFlight.add(p);
    void p.finally(() => {
      this.inFlight.delete(p);
      this.wake?.();
    });
  }

  private async handle(item: DequeuedMessageItem): Promise<void> {
    const max = this.config.maxDequeueCount;
    if (item.dequeueCount > max) {
      // Dequeued too often without completing (e.g. the host crashed mid-run each time).
      await this.toPoison(item, `dequeued ${item.dequeueCount} times`);
      return;
    }
    let text: string;
    try {
      text = decodeMessage(item.messageText, this.config.messageEncoding);
    } catch (err) {
      if (!(err instanceof InvalidQueueMessageError)) throw err;
      // It will never decode: not retried (the move keeps the message as it was sent).
      await this.toPoison(item, `not valid base64, on its ${item.dequeueCount === 1 ? "first delivery" : `delivery ${item.dequeueCount}`}`);
      return;
    }
    try {
      await this.events.invoke({
        text,
        dequeueCount: item.dequeueCount,
        id: item.messageId,
        popReceipt: item.popReceipt,
        insertionTime: item.insertedOn,
        expirationTime: item.expiresOn,
        nextVisibleTime: item.nextVisibleOn,
      });
      await this.queue.deleteMessage(item.messageId, item.popReceipt);
    } catch (err) {
      const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      if (item.dequeueCount >= max) {
        await this.toPoison(item, `failed ${item.dequeueCount} times, last error ${reason}`);
      } else {
        this.events.log("warning", `queue ${this.queue.name}: message ${item.messageId} failed (attempt ${item.dequeueCount} of ${max}); it will be retried`);
        await this.queue
          .updateMessage(item.messageId, item.popReceipt, undefined, Math.ceil(this.config.visibilityTimeoutMs / 1000))
          .catch((e: Error) => this.events.log("warning", `queue ${this.queue.name}: could not release message ${item.messageId}: ${e.message}`));
      }
    }
  }

  private async toPoison(item: DequeuedMessageItem, why: string): Promise<void> {
    await this.poison.createIfNotExists();
    await this.poison.sendMessage(item.messageText);
    await this.queue.deleteMessage(item.messageId, item.popReceipt);
    this.events.log("error", `queue ${this.queue.name}: message ${item.messageId} moved to ${this.poison.name} (${why})`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await Promise.allSettled([...this.inFlight]);
  }
}
