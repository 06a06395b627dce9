/**
 * SafeData transfers: declare an upload, send its content once (encrypted on the way into storage), read its
 * metadata, download it (decrypted, whole or by range), list and delete. Every access is in the audit log.
 *
 * The rules come from shared/domain/uploads.ts (life, states, who may download when); the encrypted bytes from
 * shared/stores/payload-store.ts; the record from shared/stores/upload-store.ts.
 */
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { IntegrityError, lookupHash, normaliseEmail } from "../crypto";
import {
  RECEIVING_LEASE_MS,
  admitDownload,
  expiresAt,
  isGone,
  maskEmail,
  mediaTypeEssence,
  newUploadId,
  parseRange,
  plainContentType,
  type DataCategory,
  type UploadStatus,
} from "../domain/uploads";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import { PayloadBodyError, PayloadMissingError } from "../stores/payload-store";
import type { StoredUpload, UploadDoc } from "../stores/upload-store";
import { recordAudit, type TenantCaller } from "./audit-trail";
import { notificationMessage } from "./messages";
import { QUEUES } from "../config/resources";
import { newWrappedDataKey, openField, sealField, unwrapUploadKey, type PersonalField } from "./upload-keys";

/** What a tenant declares when it creates an upload (validated by the HTTP layer against its schema). */
export interface CreateUploadInput {
  senderReference: string;
  recipients: string[];
  dataSubjects: string[];
  categories: DataCategory[];
  fileName: string;
  contentType: string;
  /** Exact size of the content, in bytes. */
  size: number;
  maxDownloads?: number;
  /** At most MAX_LIFE_DAYS (32, the default). */
  expiresInDays?: number;
  notifyOnFirstDownload?: string;
}

export interface CreatedUpload {
  id: string;
  status: UploadStatus;
  expiresAt: string;
  upload: { method: "PUT"; url: string; contentType: string; size: number };
}

/** An upload as listed: ids, states, times and counts; nothing personal. */
export interface UploadSummary {
  id: string;
  status: UploadStatus;
  createdAt: string;
  expiresAt: string;
  categories: string[];
  contentType: string;
  size: number;
  maxDownloads: number | null;
  downloads: number;
  firstDownloadAt: string | null;
  contentStoredAt: string | null;
  recipients: { count: number };
  dataSubjects: { count: number };
  contentUrl: string;
  deletion?: { reason: string; at: string; completed: boolean };
}

/** One upload's metadata: the summary plus, while its key exists, the masked recipients, file name and reference. */
export interface UploadView extends Omit<UploadSummary, "recipients"> {
  recipients: { count: number; masked?: string[] };
  fileName?: string;
  senderReference?: string;
}

export const contentUrl = (id: string) => `/api/v1/uploads/${id}/content`;

function summary(doc: UploadDoc): UploadSummary {
  return {
    id: doc.id,
    status: doc.status,
    createdAt: doc.createdAt,
    expiresAt: doc.expiresAt,
    categories: doc.categories,
    // Records from before the declared type was encrypted may hold all of it: list the plain part only.
    contentType: plainContentType(doc.contentType),
    size: doc.declaredSize,
    maxDownloads: doc.maxDownloads,
    downloads: doc.downloads,
    firstDownloadAt: doc.firstDownloadAt,
    contentStoredAt: doc.content?.storedAt ?? null,
    recipients: { count: doc.recipientCount },
    dataSubjects: { count: doc.subjectCount },
    contentUrl: contentUrl(doc.id),
    ...(doc.deletion ? { deletion: { reason: doc.deletion.reason, at: doc.deletion.requestedAt, completed: doc.deletion.completedAt !== null } } : {}),
  };
}

async function mustGet(s: Services, tenantId: string, uploadId: string): Promise<StoredUpload> {
  const doc = await s.uploads.get(tenantId, uploadId);
  // Unknown ids and other tenants' ids are the same answer: the read names the caller's tenant only.
  if (!doc) throw new AppError("not-found", "no upload with this id");
  return doc;
}

/**
 * Declares an upload: a fresh data key wrapped by the tenant's current KEK; the personal fields encrypted with it;
 * the data subjects and recipients findable only by keyed hash. Errors: validation-failed when `size` exceeds the
 * service's limit (MAX_UPLOAD_BYTES).
 */
export async function createUpload(s: Services, caller: TenantCaller, input: CreateUploadInput): Promise<CreatedUpload> {
  if (input.size > s.settings.maxUploadBytes) {
    throw new AppError("validation-failed", `size may be at most ${s.settings.maxUploadBytes} bytes`, {
      errors: [{ path: "size", message: `must be at most ${s.settings.maxUploadBytes}` }],
    });
  }
  const { tenantId } = caller;
  const uploadId = newUploadId();
  const now = s.clock.now();
  const { dataKey, wrapped } = await newWrappedDataKey(s, tenantId, uploadId, caller.kekVersion);
  const lookupSecret = await s.keys.lookupSecret(tenantId);
  const seal = (field: PersonalField, value: string) => sealField(dataKey, tenantId, uploadId, field, value);
  const lookupsOf = (addresses: string[]) => [...new Set(addresses.map((a) => lookupHash(lookupSecret, normaliseEmail(a))))];
  const doc: UploadDoc = {
    id: uploadId,
    tenantId,
    type: "upload",
    status: "awaiting-content",
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    expiresAt: expiresAt(now, input.expiresInDays).toISOString(),
    createdBy: caller.actor,
    categories: input.categories,
    contentType: plainContentType(input.contentType),
    declaredSize: input.size,
    maxDownloads: input.maxDownloads ?? null,
    downloads: 0,
    firstDownloadAt: null,
    recipientCount: input.recipients.length,
    subjectCount: input.dataSubjects.length,
    personal: {
      senderReference: seal("senderReference", input.senderReference),
      fileName: seal("fileName", input.fileName),
      recipients: seal("recipients", JSON.stringify(input.recipients)),
      subjects: seal("subjects", JSON.stringify(input.dataSubjects)),
      notifyEmail: input.notifyOnFirstDownload ? seal("notifyEmail", input.notifyOnFirstDownload) : null,
      contentType: seal("contentType", input.contentType),
    },
    lookups: { subjects: lookupsOf(input.dataSubjects), recipients: lookupsOf(input.recipients) },
    dataKey: wrapped,
    receiving: null,
    content: null,
    notifyOnFirstDownload: input.notifyOnFirstDownload !== undefined,
    senderNotifiedAt: null,
    deletion: null,
  };
  await s.uploads.create(doc);
  await recordAudit(s, tenantId, caller, "upload.created", { type: "upload", id: uploadId }, {
    size: input.size,
    categories: input.categories,
    recipients: input.recipients.length,
    dataSubjects: input.dataSubjects.length,
    kekVersion: wrapped.kekVersion,
  });
  return {
    id: uploadId,
    status: doc.status,
    expiresAt: doc.expiresAt,
    // The plain type is all a PUT must repeat (its essence is compared), and this answer is kept for replays.
    upload: { method: "PUT", url: contentUrl(uploadId), contentType: doc.contentType, size: input.size },
  };
}

/** One upload's metadata. Errors: not-found (also for another tenant's id). */
export async function getUpload(s: Services, caller: TenantCaller, uploadId: string): Promise<UploadView> {
  const doc = await mustGet(s, caller.tenantId, uploadId);
  return viewOf(doc, doc.personal && doc.dataKey ? await unwrapUploadKey(s, doc) : undefined);
}

/** The metadata a tenant sees: counts and masked addresses; the personal fields only while the key exists. */
function viewOf(doc: UploadDoc, dataKey: Buffer | undefined): UploadView {
  const base = summary(doc);
  if (!doc.personal || !dataKey) return { ...base, recipients: { count: doc.recipientCount } };
  const open = (field: PersonalField, sealed: string) => openField(dataKey, doc.tenantId, doc.id, field, sealed);
  const recipients = JSON.parse(open("recipients", doc.personal.recipients)) as string[];
  return {
    ...base,
    contentType: declaredContentType(doc, dataKey),
    recipients: { count: recipients.length, masked: recipients.map(maskEmail) },
    fileName: open("fileName", doc.personal.fileName),
    senderReference: open("senderReference", doc.personal.senderReference),
  };
}

/** The Content-Type as declared (decrypted), or the stored one of a record from before it was encrypted. */
function declaredContentType(doc: UploadDoc, dataKey: Buffer): string {
  const sealed = doc.personal?.contentType;
  return sealed ? openField(dataKey, doc.tenantId, doc.id, "contentType", sealed) : doc.contentType;
}

/** A page of the tenant's uploads, newest first. */
export async function listUploads(
  s: Services,
  caller: TenantCaller,
  opts: { status?: UploadStatus; limit: number; cursor?: string },
): Promise<{ items: UploadSummary[]; nextCursor?: string }> {
  const page = await s.uploads.list(caller.tenantId, opts);
  return { items: page.items.map(summary), nextCursor: page.cursor };
}

/** The content as sent: its declared type and length (from the request's headers) and the bytes. */
export interface IncomingContent {
  /** The Content-Type it was sent with, or null when none was given. */
  contentType: string | null;
  /** The Content-Length it was sent with, or null (chunked). */
  contentLength: number | null;
  body: Readable;
}

/**
 * Stores the content of an upload, once: exactly the declared size and type, encrypted as it streams into storage.
 * A concurrent attempt loses and gets `conflict`; a body that is cut short, too long or stalls leaves nothing behind
 * and the upload can be sent again. Errors: not-found, upload-expired, upload-deleted, conflict,
 * unsupported-media-type, payload-too-large, malformed-request, request-timeout.
 */
export async function putContent(s: Services, caller: TenantCaller, uploadId: string, content: IncomingContent, log: Log): Promise<UploadView> {
  const { tenantId } = caller;
  const doc = await mustGet(s, tenantId, uploadId);
  const now = s.clock.now();
  if (isGone(doc.status) || now.getTime() >= Date.parse(doc.expiresAt)) {
    const expired = doc.status === "expired" || doc.deletion?.reason === "expired" || !isGone(doc.status);
    throw new AppError(expired ? "upload-expired" : "upload-deleted", `the upload ${expired ? "reached the end of its life" : "was deleted"}; create a new one`);
  }
  if (doc.status === "available") throw new AppError("conflict", "the content was already sent; content may be sent once");
  if (doc.status === "receiving" && doc.receiving && now.getTime() - Date.parse(doc.receiving.since) < RECEIVING_LEASE_MS) {
    throw new AppError("conflict", "the content is being sent by another request");
  }
  if (content.contentType === null || mediaTypeEssence(content.contentType) !== mediaTypeEssence(doc.contentType)) {
    throw new AppError("unsupported-media-type", `send the content with the media type '${mediaTypeEssence(doc.contentType)}', as declared when the upload was created`);
  }
  const n = content.contentLength;
  if (n !== null) {
    if (n > s.settings.maxUploadBytes) throw new AppError("payload-too-large", `uploads may be at most ${s.settings.maxUploadBytes} bytes`);
    if (n > doc.declaredSize) throw new AppError("payload-too-large", `Content-Length ${n} is larger than the declared size of ${doc.declaredSize} bytes`);
    if (n < doc.declaredSize) throw new AppError("malformed-request", `Content-Length ${n} is smaller than the declared size of ${doc.declaredSize} bytes`);
  }

  // Claim the upload for this attempt; a concurrent PUT loses the etag race and gets 409.
  const attemptId = randomBytes(8).toString("hex");
  const claim = await s.uploads.update(
    tenantId,
    uploadId,
    (d) => ({ ...withoutMeta(d), status: "receiving", receiving: { attemptId, since: now.toISOString() }, updatedAt: now.toISOString() }),
    { current: doc, attempts: 1 },
  );
  if (!claim.updated) throw new AppError("conflict", "the content is being sent by another request");

  const target = { tenantId, uploadId, attemptId };
  let dataKey: Buffer;
  let stored;
  try {
    dataKey = await unwrapUploadKey(s, doc);
    stored = await s.payloads.write(target, dataKey, content.body, {
      size: doc.declaredSize,
      idleMs: s.settings.uploadIdleSeconds * 1000,
    });
  } catch (err) {
    content.body.destroy();
    // The blocks this attempt staged are ciphertext of personal data: they go before the upload may be sent again.
    await discardAttempt(s, target, log);
    await releaseClaim(s, tenantId, uploadId, attemptId);
    if (err instanceof PayloadBodyError && err.kind !== "payload-too-large") {
      log.warn(err.kind === "request-timeout" ? "upload.content-stalled" : "upload.content-interrupted", { uploadId, received: err.received, declared: doc.declaredSize });
    }
    throw err;
  }

  const storedAt = s.clock.now().toISOString();
  const done = await s.uploads.update(tenantId, uploadId, (d) =>
    d.status === "receiving" && d.receiving?.attemptId === attemptId
      ? { ...withoutMeta(d), status: "available", receiving: null, content: { ...stored, storedAt }, updatedAt: storedAt }
      : undefined,
  );
  if (!done.updated) {
    // Deleted, or taken over, while we were storing: our blob must not outlive the record's say-so. Only ours: an
    // attempt that took over owns its own blob.
    await discardAttempt(s, target, log);
    throw new AppError("conflict", "the upload changed while the content was being stored; nothing was kept");
  }
  await recordAudit(s, tenantId, caller, "upload.content-stored", { type: "upload", id: uploadId }, { bytes: doc.declaredSize, storedBytes: stored.ciphertextSize });
  s.telemetry.metric("upload.stored-bytes", doc.declaredSize);
  return viewOf(done.after, dataKey);
}

/**
 * Removes what a content attempt left in storage (its blob or its staged blocks). A failure is logged, not thrown:
 * DELETE and the purge remove every block under the upload, and Azure drops uncommitted blocks after 7 days.
 */
async function discardAttempt(s: Services, target: { tenantId: string; uploadId: string; attemptId: string }, log: Log): Promise<void> {
  try {
    await s.payloads.discard(target);
  } catch (err) {
    log.warn("upload.attempt-not-discarded", { tenantId: target.tenantId, uploadId: target.uploadId, errorName: (err as Error).name });
  }
}

/** Puts an upload whose content attempt failed back to awaiting-content, if the attempt is still the current one. */
async function releaseClaim(s: Services, tenantId: string, uploadId: string, attemptId: string): Promise<void> {
  await s.uploads.update(tenantId, uploadId, (d) =>
    d.status === "receiving" && d.receiving?.attemptId === attemptId
      ? { ...withoutMeta(d), status: "awaiting-content", receiving: null, updatedAt: s.clock.now().toISOString() }
      : undefined,
  );
}

/** A download as it is about to be sent. */
export interface OpenedContent {
  /** A byte range was asked for and is sent (206), rather than the whole content (200). */
  partial: boolean;
  /** The bytes sent, inclusive, when partial. */
  range?: { start: number; end: number };
  /** The whole content's size in bytes. */
  size: number;
  /** As declared when the upload was created. */
  contentType: string;
  /** Absent once the upload's personal fields are gone. */
  fileName?: string;
  /** Plaintext, authenticated segment by segment; it fails rather than let an unauthenticated byte through. */
  body: Readable;
}

/**
 * Opens the content for download, whole or one byte range (`rangeHeader`: RFC 9110 §14.2 `bytes=` syntax, or null).
 * The download is counted and written to the audit log before the first byte leaves; bytes leave only after their
 * segment's authentication tag checked out; damage mid-way fails the stream and is logged. Errors: not-found,
 * upload-expired, upload-deleted, download-limit-reached, conflict (no content yet, or contended),
 * range-not-satisfiable (with the content's size), integrity-error.
 */
export async function openContent(s: Services, caller: TenantCaller, uploadId: string, rangeHeader: string | null, log: Log): Promise<OpenedContent> {
  const { tenantId, requestId } = caller;
  let doc = await mustGet(s, tenantId, uploadId);
  const size = doc.declaredSize;
  const range = parseRange(rangeHeader, size);
  const admit = (d: StoredUpload) => {
    const admitted = admitDownload({ ...d, deletionReason: d.deletion?.reason }, s.clock.now());
    if (!admitted.ok) throw new AppError(admitted.problem, admitted.detail);
  };
  admit(doc);
  if (range.kind === "malformed" || range.kind === "unsatisfiable") {
    throw new AppError(
      "range-not-satisfiable",
      range.kind === "malformed" ? "the Range header must be one range like 'bytes=0-1023', 'bytes=1024-' or 'bytes=-512'" : `the range starts beyond the end of the ${size}-byte content`,
      { contentSize: size },
    );
  }

  // Everything that can fail for reasons other than the caller (the key service) comes before the download is
  // counted, so such a failure never uses up a download or audits bytes that were never sent.
  const dataKey = await unwrapUploadKey(s, doc);
  const fileName = doc.personal ? openField(dataKey, doc.tenantId, doc.id, "fileName", doc.personal.fileName) : undefined;
  const bytes = range.kind === "range" ? range.end - range.start + 1 : size;

  // Count the download (optimistic concurrency: with maxDownloads, parallel requests cannot exceed it).
  const counted = await s.uploads.update(
    tenantId,
    uploadId,
    (d) => {
      admit(d);
      const now = s.clock.now().toISOString();
      return { ...withoutMeta(d), downloads: d.downloads + 1, firstDownloadAt: d.firstDownloadAt ?? now, updatedAt: now };
    },
    { current: doc, attempts: 20 },
  );
  if (!counted.updated) {
    if (counted.reason === "not-found") throw new AppError("not-found", "no upload with this id");
    throw new AppError("conflict", "too many concurrent downloads of this upload; retry");
  }
  // The record as it was when this download was counted.
  doc = counted.before;
  const first = doc.downloads === 0;
  const content = doc.content!;
  await recordAudit(s, tenantId, caller, "upload.downloaded", { type: "upload", id: uploadId }, {
    bytes,
    ...(range.kind === "range" ? { range: `${range.start}-${range.end}` } : {}),
    download: doc.downloads + 1,
  });
  if (first && doc.notifyOnFirstDownload) {
    await s.queues.send(QUEUES.notifications.name, notificationMessage, { kind: "first-download", tenantId, uploadId });
  }

  let body: Readable;
  try {
    body = await s.payloads.open(
      { tenantId, uploadId, blobName: content.blobName, header: content.header, size },
      dataKey,
      range.kind === "range" ? { start: range.start, end: range.end } : undefined,
    );
  } catch (err) {
    if (err instanceof PayloadMissingError) {
      log.error("upload.content-missing", { tenantId, uploadId });
      throw new AppError("integrity-error", "the stored content of this upload is missing; the incident was logged");
    }
    if (err instanceof IntegrityError) {
      log.error("upload.integrity-failure", { tenantId, uploadId, requestId, failure: err.failure, segment: err.segmentIndex });
      throw new AppError("integrity-error", "the stored content failed its integrity check; nothing was sent and the incident was logged");
    }
    throw err;
  }
  body.on("error", (err) => {
    if (err instanceof IntegrityError) {
      log.error("upload.integrity-failure", { tenantId, uploadId, requestId, failure: err.failure, segment: err.segmentIndex });
    } else {
      log.warn("upload.download-interrupted", { tenantId, uploadId, requestId, errorName: err.name });
    }
  });
  return {
    partial: range.kind === "range",
    ...(range.kind === "range" ? { range: { start: range.start, end: range.end } } : {}),
    size,
    contentType: declaredContentType(doc, dataKey),
    ...(fileName !== undefined ? { fileName } : {}),
    body,
  };
}
