/**
 * The local outbox, readable: every e-mail the outbox adapter stores is also written as a standard RFC 5322 message
 * (`.eml`, MIME per RFC 2045-2047: UTF-8 subject and bodies, plain text and HTML as alternatives), which any mail
 * client opens. Composed by nodemailer's MIME composer, never by string concatenation. Local use only: the files hold
 * addresses and codes in clear. Lives with the local runtime; deployed code never writes them.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import MailComposer from "nodemailer/lib/mail-composer";
import type { OutboxRecord } from "../shared/email/outbox-email-sender";

/** Setting (environment or local.settings.json) naming the folder; default `.local/outbox` beside the settings. */
export const LOCAL_OUTBOX_DIR = "LOCAL_OUTBOX_DIR";

/** The .eml bytes of a stored outbox record. */
export async function composeEml(record: OutboxRecord): Promise<Buffer> {
  const mail = new MailComposer({
    from: record.sender,
    to: [...record.to],
    subject: record.subject,
    text: record.text,
    ...(record.html ? { html: record.html } : {}),
    date: new Date(record.sentAt),
    messageId: `<${record.messageId}@safedata.local>`,
    textEncoding: "quoted-printable",
  });
  return mail.compile().build();
}

/** Writes each record as `<folder>/<sent time>-<messageId>.eml` (owner-readable only). Returns the file's path. */
export function emlWriter(folder: string): (record: OutboxRecord) => Promise<string> {
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  return async (record) => {
    const file = path.join(folder, `${record.sentAt.replace(/[:.]/g, "")}-${record.messageId}.eml`);
    writeFileSync(file, await composeEml(record), { mode: 0o600 });
    return file;
  };
}
