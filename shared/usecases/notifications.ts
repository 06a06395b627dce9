/**
 * E-mail notices the service sends on a tenant's behalf, from the templates in templates/email/ in the tenant's
 * language, with dates in its time zone. Each is sent at most once (stable message ids).
 */
import { DEFAULT_LANGUAGE } from "../domain/language";
import { DEFAULT_TIME_ZONE } from "../domain/tenant";
import { formatInstant } from "../domain/time";
import { isLive } from "../domain/uploads";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import { recordAuditOnce } from "./audit-trail";
import type { NotificationMessage } from "./messages";
import { openField, unwrapUploadKey } from "./upload-keys";

/**
 * Sends the sender's first-download notice for the upload the message names, once, and only if the stored upload
 * says it is due: its sender asked to be told, it was downloaded (firstDownloadAt), it still exists, and nobody was
 * told yet. The message itself is only a pointer: a forged or repeated one sends nothing that is not due.
 */
export async function sendFirstDownloadNotice(s: Services, msg: NotificationMessage): Promise<"sent" | "skipped"> {
  const doc = await s.uploads.get(msg.tenantId, msg.uploadId);
  // Nothing to do: unknown, not asked for, never downloaded, already told, or deleted (the address was shredded
  // with the upload).
  if (!doc || !doc.notifyOnFirstDownload || doc.firstDownloadAt === null || doc.senderNotifiedAt) return "skipped";
  if (!isLive(doc.status) || !doc.personal?.notifyEmail || !doc.dataKey) return "skipped";
  const dataKey = await unwrapUploadKey(s, doc);
  const to = openField(dataKey, doc.tenantId, doc.id, "notifyEmail", doc.personal.notifyEmail);
  const tenant = await s.tenants.get(doc.tenantId);
  const language = tenant?.language ?? DEFAULT_LANGUAGE;
  const timeZone = tenant?.timeZone ?? DEFAULT_TIME_ZONE;
  const message = s.templates.render("first-download", language, {
    uploadId: doc.id,
    controllerName: tenant?.name ?? "safedata",
    downloadedAt: formatInstant(new Date(doc.firstDownloadAt), language, timeZone),
    expiresAt: formatInstant(new Date(doc.expiresAt), language, timeZone),
  });
  await s.email.send({ messageId: `first-download-${doc.id}`, to: [to], ...message });
  await s.uploads.update(doc.tenantId, doc.id, (fresh) =>
    fresh.senderNotifiedAt ? undefined : { ...withoutMeta(fresh), senderNotifiedAt: s.clock.now().toISOString() },
  );
  const seq = await recordAuditOnce(
    s,
    doc.tenantId,
    { actor: "system:notifications" },
    "upload.first-download-notified",
    { type: "upload", id: doc.id },
    { recipients: 1 },
    `upload.first-download-notified:${doc.id}`,
  );
  // Another worker is recording the same notice: fail so the queue retries, and the retry finds it recorded.
  if (seq === undefined) throw new Error("the notice's audit entry is being written by another worker");
  return "sent";
}
