/**
 * Outgoing e-mail. In Azure: Azure Communication Services Email. Locally: an outbox (blob container
 * "email-outbox") a person can read. Addresses and bodies are personal data: never log them.
 */
export interface EmailMessage {
  /** Stable id chosen by the caller (e.g. a hash of what the mail is about); a retry with the same id must not send twice. */
  readonly messageId: string;
  readonly to: readonly string[];
  readonly subject: string;
  readonly text: string;
  readonly html?: string;
}

export interface EmailSendResult {
  /** The provider's id for the sent message (ACS operation id; the outbox blob name locally). */
  readonly providerMessageId: string;
}

export interface EmailSender {
  send(message: EmailMessage): Promise<EmailSendResult>;
}

/* The message rules both senders apply, so a message the outbox accepts locally is one ACS accepts in Azure. */

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
