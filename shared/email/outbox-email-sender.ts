/**
 * Local e-mail: instead of sending, each message is written to the outbox blob container ("email-outbox", created
 * by the local runtime) as `<yyyy-mm-dd>/<messageId>.json`, so a person running the app can read what would have
 * gone out, and tests can assert on it.
 *
 * Idempotent per messageId: both writes are create-only (`If-None-Match: *`). A small pointer blob
 * `by-message-id/<messageId>` records which dated name the first attempt used, so a retry on a later day
 * finds the same message instead of writing a second one.
 *
 */
import type { ContainerClient } from "@azure/storage-blob";
import { errorFields, type Log } from "../observability";
import { isEmailAddress, validateEmailMessage, type EmailMessage, type EmailSendResult, type EmailSender } from "./email-sender";

/** What the outbox stores per message. */
export interface OutboxRecord {
  readonly messageId: string;
  readonly sender: string;
  readonly to: readonly string[];
  readonly subject: string;
  readonly text: string;
  readonly html: string | null;
  /** ISO 8601. */
  readonly sentAt: string;
}

export interface OutboxEmailSenderOptions {
  /** Time source for `sentAt` and the day folder. Default: the system clock. */
  readonly clock?: { now(): Date };
}

/** Told of every message the outbox stores, once (the local runtime writes each as an .eml file a mail client opens). */
export type OutboxListener = (record: OutboxRecord) => Promise<unknown> | unknown;

const POINTER_PREFIX = "by-message-id/";
const STORED_NAME = /^\d{4}-\d{2}-\d{2}\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.json$/;

function isAlreadyExists(err: unknown): boolean {
  return (err as { statusCode?: unknown } | null)?.statusCode === 409;
}

export class OutboxEmailSender implements EmailSender {
  private readonly clock: { now(): Date };
  private readonly listeners: Array<{ listener: OutboxListener; log: Log }> = [];

  constructor(
    private readonly container: ContainerClient,
    private readonly senderAddress: string,
    options: OutboxEmailSenderOptions = {},
  ) {
    if (!isEmailAddress(senderAddress)) throw new RangeError("OutboxEmailSender: the sender must be an e-mail address");
    this.clock = options.clock ?? { now: () => new Date() };
  }

  /**
   * Adds a listener told of each message stored from now on. A failing listener never fails a send: its failure goes
   * to `log` as `outbox.listener-failed` with the message id and the error's kind (never an address).
   */
  onStored(listener: OutboxListener, log: Log): void {
    this.listeners.push({ listener, log });
  }

  async send(message: EmailMessage): Promise<EmailSendResult> {
    validateEmailMessage(message);
    const now = this.clock.now();
    const blobName = await this.claimName(message.messageId, `${now.toISOString().slice(0, 10)}/${message.messageId}.json`);
    const record: OutboxRecord = {
      messageId: message.messageId,
      sender: this.senderAddress,
      to: [...message.to],
      subject: message.subject,
      text: message.text,
      html: message.html ?? null,
      sentAt: now.toISOString(),
    };
    const body = JSON.stringify(record, null, 2);
    try {
      await this.container.getBlockBlobClient(blobName).upload(body, Buffer.byteLength(body), {
        conditions: { ifNoneMatch: "*" },
        blobHTTPHeaders: { blobContentType: "application/json; charset=utf-8" },
      });
    } catch (err) {
      // Written by an earlier attempt: that one counts, this one is a no-op.
      if (!isAlreadyExists(err)) throw err;
      return { providerMessageId: blobName };
    }
    for (const { listener, log } of this.listeners) {
      try {
        await listener(record);
      } catch (err) {
        log.warn("outbox.listener-failed", { messageId: message.messageId, ...errorFields(err) });
      }
    }
    return { providerMessageId: blobName };
  }

  /** The dated blob name for this messageId: the one an earlier attempt claimed, or this one. */
  private async claimName(messageId: string, proposed: string): Promise<string> {
    const pointer = this.container.getBlockBlobClient(`${POINTER_PREFIX}${messageId}`);
    try {
      await pointer.upload(proposed, Buffer.byteLength(proposed), {
        conditions: { ifNoneMatch: "*" },
        blobHTTPHeaders: { blobContentType: "text/plain; charset=utf-8" },
      });
      return proposed;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    const claimed = (await pointer.downloadToBuffer()).toString("utf8");
    if (!STORED_NAME.test(claimed) || !claimed.endsWith(`/${messageId}.json`)) {
      throw new Error(`outbox pointer for message ${messageId} is malformed`);
    }
    return claimed;
  }
}
