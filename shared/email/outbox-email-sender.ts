/**
 * Local e-mail: instead of sending, each message is written to the outbox blob container ("email-outbox", created
 * by the local runtime) as `<yyyy-mm-dd>/<messageId>.json`, so a person running the app can read what would have
 * gone out, and tests can assert on it.
 *
 * Idempotent per messageId: both writes are create-only (`If-None-Match: *`). A small pointer blob
 * `by-message-id/<messageId>` records which dated name the first attempt used, so a retry on a later day
 * finds the same message instead of writing a second one.
 *
 * This module also holds the message rules both senders apply, so a message the outbox accepts locally is one
 * ACS accepts in Azure.
 */
import type { ContainerClient } from "@azure/storage-blob";
import type { EmailMessage, EmailSendResult, EmailSender } from "./email-sender";

/** messageId becomes part of a blob name and an operation id: a conservative alphabet, no path separators. */
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** ACS accepts at most 50 recipients per message. */
export const MAX_RECIPIENTS = 50;
const ADDRESS_PATTERN = /^[^\s@<>",;]+@[^\s@<>",;]+\.[^\s@<>",;]+$/;

/** The message cannot be sent as given. Names the problem, never the addresses or text. */
export class InvalidEmailMessageError extends Error {
  constructor(problem: string) {
    super(`invalid e-mail message: ${problem}`);
    this.name = "InvalidEmailMessageError";
  }
}

export function isEmailAddress(value: unknown): value is string {
  return typeof value === "string" && value.length <= 254 && ADDRESS_PATTERN.test(value);
}

export function validateEmailMessage(message: EmailMessage): void {
  if (typeof message.messageId !== "string" || !MESSAGE_ID_PATTERN.test(message.messageId)) {
    throw new InvalidEmailMessageError(`messageId must match ${MESSAGE_ID_PATTERN.source}`);
  }
  if (!Array.isArray(message.to) || message.to.length === 0) throw new InvalidEmailMessageError("at least one recipient is required");
  if (message.to.length > MAX_RECIPIENTS) throw new InvalidEmailMessageError(`at most ${MAX_RECIPIENTS} recipients per message`);
  message.to.forEach((address, i) => {
    if (!isEmailAddress(address)) throw new InvalidEmailMessageError(`recipient ${i + 1} is not an e-mail address`);
  });
  if (typeof message.subject !== "string" || message.subject.trim() === "") throw new InvalidEmailMessageError("subject is required");
  if (/[\r\n]/.test(message.subject)) throw new InvalidEmailMessageError("subject must be one line");
  if (typeof message.text !== "string" || message.text.trim() === "") throw new InvalidEmailMessageError("a plain-text body is required");
  if (message.html !== undefined && typeof message.html !== "string") throw new InvalidEmailMessageError("html must be a string");
}

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

const POINTER_PREFIX = "by-message-id/";
const STORED_NAME = /^\d{4}-\d{2}-\d{2}\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.json$/;

function isAlreadyExists(err: unknown): boolean {
  return (err as { statusCode?: unknown } | null)?.statusCode === 409;
}

export class OutboxEmailSender implements EmailSender {
  private readonly clock: { now(): Date };

  constructor(
    private readonly container: ContainerClient,
    private readonly senderAddress: string,
    options: OutboxEmailSenderOptions = {},
  ) {
    if (!isEmailAddress(senderAddress)) throw new RangeError("OutboxEmailSender: the sender must be an e-mail address");
    this.clock = options.clock ?? { now: () => new Date() };
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
