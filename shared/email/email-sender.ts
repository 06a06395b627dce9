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
