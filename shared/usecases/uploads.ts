/**
 * SafeData transfers: declare an upload, send its content once (encrypted on the way into storage), read its
 * metadata, download it (decrypted, whole or by range), list and delete. Every access is in the audit log.
 *
 * The rules come from shared/domain/uploads.ts (life, states, who may download when); the encrypted bytes from
 * shared/stores/payload-store.ts; the record from shared/stores/upload-store.ts.
 */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { IntegrityError, lookupHash, normaliseEmail } from "../crypto";
import {
  RECEIVING_LEASE_MS,
  admitDownload,
  expiresAt,
  isGone,
  maskEmail,
  mediaTypeEssence,
  newUploadId,
  contentEtag,
  ifRangeAllows,
  notModified,
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
import { entryAfterFailedAppend, recordAudit, type TenantCaller } from "./audit-trail";
import { notificationMessage } from "./messages";
import { requireConsent } from "./consents";
import { assertNoObjection } from "./subject-request-objection";
import { assertNotRestricted } from "./subject-request-restriction";
import { QUEUES } from "../config/resources";
import { DownloadStoppedError, guardDownload, type DownloadGuard } from "./running-downloads";
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
  /** A consent purpose the upload rests on: every data subject's latest decision for it must be `granted`. */
  consentPurpose?: string;
  /** The purpose of the processing (e.g. `direct-marketing`): refused while a data subject objected to it (GDPR Art. 21). */
  purpose?: string;
  /** The data subject provided the content (GDPR Art. 20(1)): it goes into their portability package. */
  providedBySubject?: boolean;
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
 * service's limit (MAX_UPLOAD_BYTES) or `consentPurpose` names no purpose; consent-not-granted when a data subject's
 * latest decision for `consentPurpose` is not `granted` (GDPR Art. 6(1)(a), 7(3): no processing on a consent
 * withdrawn, refused or never given).
 */
export async function createUpload(s: Services, caller: TenantCaller, input: CreateUploadInput): Promise<CreatedUpload> {
  if (input.size > s.settings.maxUploadBytes) {
    throw new AppError("validation-failed", `size may be at most ${s.settings.maxUploadBytes} bytes`, {
      errors: [{ path: "size", message: `must be at most ${s.settings.maxUploadBytes}` }],
    });
  }
  const { tenantId } = caller;
  if (input.consentPurpose !== undefined) await requireConsent(s, tenantId, input.consentPurpose, input.dataSubjects, "consentPurpose");
  const uploadId = newUploadId();
  const now = s.clock.now();
  const { dataKey, wrapped } = await newWrappedDataKey(s, tenantId, uploadId, caller.kekVersion);
  const lookupSecret = await s.keys.lookupSecret(tenantId);
  const seal = (field: PersonalField, value: string) => sealField(dataKey, tenantId, uploadId, field, value);
  const lookupsOf = (addresses: string[]) => [...new Set(addresses.map((a) => lookupHash(lookupSecret, normaliseEmail(a))))];
  // A data subject who objected to a purpose this upload declares (Art. 21): refused before anything is stored.
  await assertNoObjection(s, tenantId, [input.purpose, input.consentPurpose].filter((p): p is string => p !== undefined), lookupsOf(input.dataSubjects));
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
    ...(input.providedBySubject ? { providedBySubject: true } : {}),
    senderNotifiedAt: null,
    deletion: null,
  };
  const etag = await s.uploads.create(doc);
  await recordAudit(s, tenantId, caller, "upload.created", { type: "upload", id: uploadId }, {
    size: input.size,
    categories: input.categories,
    recipients: input.recipients.length,
    dataSubjects: input.dataSubjects.length,
    kekVersion: wrapped.kekVersion,
    ...(input.consentPurpose !== undefined ? { consentPurpose: input.consentPurpose } : {}),
    ...(input.purpose !== undefined ? { purpose: input.purpose } : {}),
  }).catch(async (err: unknown) => {
    // No upload the log does not show: the record goes (nobody was given its id), so a retry leaves only one. An entry
    // stored all the same (its answer lost) means the upload exists: it is answered. Unknown: the record stays, and
    // expires with its own entry like any upload never sent.
    const stored = await entryAfterFailedAppend(s, tenantId, "upload.created", uploadId);
    if (stored === "absent") await s.uploads.removeUnannounced(tenantId, uploadId, etag).catch(() => false);
    if (stored === "absent" || stored === "unknown") throw err;
  });
  return {
    id: uploadId,
    status: doc.status,
    expiresAt: doc.expiresAt,
    // The plain type is all a PUT must repeat (its essence is compared), and this answer is kept for replays.
    upload: { method: "PUT", url: contentUrl(uploadId), contentType: doc.contentType, size: input.size },
  };
}

/**
 * One upload's metadata; while its key exists, with its personal fields decrypted, which is a read of personal data
 * and written to the audit log first (`upload.read`). Errors: not-found (also for another tenant's id).
 */
export async function getUpload(s: Services, caller: TenantCaller, uploadId: string): Promise<UploadView> {
  const doc = await mustGet(s, caller.tenantId, uploadId);
  const view = viewOf(doc, doc.personal && doc.dataKey ? await unwrapUploadKey(s, doc) : undefined);
  await auditRead(s, caller, doc, view, "metadata");
  return view;
}

/** The personal fields a view of `doc` shows (decrypted), by the names the audit log gives them; none without them. */
function fieldsShown(doc: UploadDoc, view: UploadView): string[] {
  if (view.fileName === undefined) return [];
  return ["senderReference", "fileName", "recipients", ...(doc.personal?.contentType ? ["contentType"] : [])];
}

/**
 * Writes the one `upload.read` entry of a request that shows decrypted personal fields (none when the view shows
 * none). `via` says which request did: "metadata" (GET or HEAD), "content-stored" (a PUT's answer), "head-content".
 */
async function auditRead(s: Services, caller: TenantCaller, doc: UploadDoc, view: UploadView, via: string): Promise<void> {
  const fields = fieldsShown(doc, view);
  if (fields.length === 0) return;
  await recordAudit(s, caller.tenantId, caller, "upload.read", { type: "upload", id: doc.id }, { fields, via });
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

  // What can fail for reasons other than the client comes before anything is claimed or stored: a damaged wrapped
  // key or personal field (IntegrityError) ends the request here, with nothing kept and nothing logged as stored.
  const dataKey = await unwrapUploadKey(s, doc);
  viewOf(doc, dataKey);

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
  let stored;
  try {
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

  // The audit entry comes before the record says "available", the step after which the content counts as sent: if
  // it cannot be written, the attempt is thrown away and the upload can be sent again, so no content is ever
  // available that the log does not show. The entry may be stored all the same (its answer lost): the log then says
  // the attempt was thrown away (best effort: a log that cannot be written now took neither).
  const auditTarget = { type: "upload" as const, id: uploadId };
  const logDiscarded = () =>
    recordAudit(s, tenantId, caller, "upload.content-discarded", auditTarget, { bytes: doc.declaredSize }).then(
      () => undefined,
      (err: unknown) => log.error("upload.audit-failed", { tenantId, uploadId, action: "upload.content-discarded", errorName: (err as Error).name }),
    );
  try {
    await recordAudit(s, tenantId, caller, "upload.content-stored", auditTarget, { bytes: doc.declaredSize, storedBytes: stored.ciphertextSize });
  } catch (err) {
    await discardAttempt(s, target, log);
    await releaseClaim(s, tenantId, uploadId, attemptId);
    await logDiscarded();
    throw err;
  }
  const storedAt = s.clock.now().toISOString();
  let done: Awaited<ReturnType<typeof s.uploads.update>> | undefined;
  let failure: unknown;
  try {
    done = await s.uploads.update(tenantId, uploadId, (d) =>
      d.status === "receiving" && d.receiving?.attemptId === attemptId
        ? { ...withoutMeta(d), status: "available", receiving: null, content: { ...stored, storedAt }, updatedAt: storedAt }
        : undefined,
    );
  } catch (err) {
    failure = err;
  }
  // A write applied whose answer was lost (an error, or a retry that met its own change and left it unchanged) has
  // made the content available all the same: it is the answer, and its blob is kept.
  const written = done?.updated ? done.after : await ownContentStored(s, tenantId, uploadId, stored.blobName, done, failure);
  if (written === "unknown") {
    // Whether the record took the content cannot be read now: the blob stays (DELETE and the purge remove every block
    // under the upload), and the caller is told it failed.
    throw failure ?? new AppError("conflict", "the upload changed while the content was being stored; retry");
  }
  if (written) done = { updated: true, before: written, after: written };
  if (!done?.updated) {
    if (failure !== undefined) {
      // The write failed, and may still land (its answer lost): the claim is released first, a conditional write
      // after which that late write cannot apply; only then does the blob go. A release that did not happen (it
      // failed, or the record is no longer this attempt's) keeps the blob: DELETE and the purge remove every block
      // under the upload, and a record that took it names it.
      const released = await releaseClaim(s, tenantId, uploadId, attemptId).catch(() => false);
      if (released) {
        await discardAttempt(s, target, log);
        await logDiscarded();
      }
      throw failure;
    }
    // Deleted, or taken over, while we were storing: our blob must not outlive the record's say-so. Only ours: an
    // attempt that took over owns its own blob. The log says it was thrown away.
    await discardAttempt(s, target, log);
    await logDiscarded();
    throw new AppError("conflict", "the upload changed while the content was being stored; nothing was kept");
  }
  s.telemetry.metric("upload.stored-bytes", doc.declaredSize);
  const view = viewOf(done.after, dataKey);
  try {
    await auditRead(s, caller, done.after, view, "content-stored");
  } catch (err) {
    // The content is stored (that is what the request was for); only the personal fields cannot be shown unlogged.
    log.error("upload.audit-failed", { tenantId, uploadId, action: "upload.read", errorName: (err as Error).name });
    return viewOf(done.after, undefined);
  }
  return view;
}

/**
 * After the write that makes an upload available did not answer "updated": whether the record holds this attempt's
 * content all the same (the write applied, its answer lost). The record as stored when it does, undefined when it does
 * not, "unknown" when it cannot be read. A record read back by the update itself (unchanged, contended) is used as is.
 */
async function ownContentStored(
  s: Services,
  tenantId: string,
  uploadId: string,
  blobName: string,
  done: Awaited<ReturnType<Services["uploads"]["update"]>> | undefined,
  failure: unknown,
): Promise<StoredUpload | undefined | "unknown"> {
  let current = done && !done.updated ? done.current : undefined;
  if (failure !== undefined || (done && !done.updated && done.reason !== "not-found" && !current)) {
    try {
      current = await s.uploads.get(tenantId, uploadId);
    } catch {
      return "unknown";
    }
  }
  return current?.status === "available" && current.content?.blobName === blobName ? current : undefined;
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

/** Puts an upload whose content attempt failed back to awaiting-content, if the attempt is still the current one; true when it did, or the upload is gone. */
async function releaseClaim(s: Services, tenantId: string, uploadId: string, attemptId: string): Promise<boolean> {
  const r = await s.uploads.update(tenantId, uploadId, (d) =>
    d.status === "receiving" && d.receiving?.attemptId === attemptId
      ? { ...withoutMeta(d), status: "awaiting-content", receiving: null, updatedAt: s.clock.now().toISOString() }
      : undefined,
  );
  return r.updated || r.reason === "not-found";
}

/** What a GET or HEAD on content asked for beyond the upload: its Range and conditional headers, as sent. */
export interface ContentRequest {
  /** HEAD: the headers a GET would get, no body, no download. */
  method: "GET" | "HEAD";
  range: string | null;
  ifRange: string | null;
  ifNoneMatch: string | null;
  /**
   * Throws when the request does not accept the content's declared type (the trigger's Accept check, RFC 9110
   * §12.5.1); called before anything is counted or audited. Absent: any type.
   */
  acceptable?: (contentType: string) => void;
}

/** The answer to a GET or HEAD on content. */
export type OpenedContent =
  | {
      kind: "not-modified";
      /** The content's strong entity tag (contentEtag). */
      etag: string;
    }
  | {
      kind: "content";
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
      etag: string;
      /**
       * Plaintext, authenticated segment by segment; it fails rather than let an unauthenticated byte through.
       * Absent for HEAD.
       */
      body?: Readable;
    };

/**
 * Answers a GET or HEAD on the content: whole or one byte range (RFC 9110 §14.2, read by parseRange), under the
 * conditions of If-None-Match (304 when the content's ETag matches: not a download) and If-Range (the range only
 * while the ETag matches). The preconditions count only where the request could otherwise succeed (§13.2.1), so
 * admission comes first. A HEAD answers the headers a GET would; it decrypts the file name and type for them, which
 * is a metadata read (`upload.read`, via "head-content"), and never counts as a download.
 *
 * For a GET, the order is what makes the count and the audit log true: (1) the first authenticated bytes are made
 * ready (a missing blob or damage at the start fails here, and nothing is counted or logged as a download); (2) the
 * download is counted, under optimistic concurrency so parallel requests cannot exceed maxDownloads; (3) the personal
 * fields the headers need are decrypted and `upload.download-started` is written, before the first byte; if either
 * fails the count is given back. The body then writes `upload.download-ended` with the bytes it sent and whether it
 * completed; if it ends before its first byte left, the count is given back too. The first-download notice is queued
 * when the first byte leaves; if it cannot be queued, the download goes on and the retention sweep queues the notice
 * later. Errors: not-found, upload-expired, upload-deleted, download-limit-reached, conflict (no content yet, or
 * contended), range-not-satisfiable (with the content's size), not-acceptable (from request.acceptable, before any
 * count or audit entry), integrity-error.
 */
export async function openContent(s: Services, caller: TenantCaller, uploadId: string, request: ContentRequest, log: Log): Promise<OpenedContent> {
  const { tenantId } = caller;
  const doc = await mustGet(s, tenantId, uploadId);
  const size = doc.declaredSize;
  const admit = (d: StoredUpload) => {
    const admitted = admitDownload({ ...d, deletionReason: d.deletion?.reason }, s.clock.now());
    if (!admitted.ok) throw new AppError(admitted.problem, admitted.detail);
  };
  admit(doc);
  // A data subject of it restricted processing (GDPR Art. 18): stored, not downloaded.
  await assertNotRestricted(s, tenantId, doc.lookups.subjects);
  const etag = contentEtag(doc.content!);
  if (notModified(request.ifNoneMatch, etag)) return { kind: "not-modified", etag };
  const range = ifRangeAllows(request.ifRange, etag) ? parseRange(request.range, size) : ({ kind: "none" } as const);
  if (range.kind === "malformed" || range.kind === "unsatisfiable") {
    throw new AppError(
      "range-not-satisfiable",
      range.kind === "malformed" ? "the Range header must be one range like 'bytes=0-1023', 'bytes=1024-' or 'bytes=-512'" : `the range starts beyond the end of the ${size}-byte content`,
      { contentSize: size },
    );
  }
  const span = range.kind === "range" ? { start: range.start, end: range.end } : undefined;
  const bytes = span ? span.end - span.start + 1 : size;
  const shape = { kind: "content" as const, partial: span !== undefined, ...(span ? { range: span } : {}), size, etag };

  if (request.method === "HEAD") {
    const dataKey = await unwrapUploadKey(s, doc);
    const fileName = doc.personal ? openField(dataKey, tenantId, uploadId, "fileName", doc.personal.fileName) : undefined;
    const contentType = declaredContentType(doc, dataKey);
    request.acceptable?.(contentType);
    if (fileName !== undefined) {
      await recordAudit(s, tenantId, caller, "upload.read", { type: "upload", id: uploadId }, {
        fields: ["fileName", ...(doc.personal?.contentType ? ["contentType"] : [])],
        via: "head-content",
      });
    }
    return { ...shape, contentType, ...(fileName !== undefined ? { fileName } : {}) };
  }

  // (1) The first authenticated bytes, once the type is one the request accepts.
  const dataKey = await unwrapUploadKey(s, doc);
  request.acceptable?.(declaredContentType(doc, dataKey));
  const payload = await openPayload(s, caller, doc, dataKey, span, log);

  // (2) Count it.
  let counted: Awaited<ReturnType<typeof s.uploads.update>>;
  try {
    counted = await s.uploads.update(
      tenantId,
      uploadId,
      (d) => {
        admit(d);
        const now = s.clock.now().toISOString();
        return { ...withoutMeta(d), downloads: d.downloads + 1, firstDownloadAt: d.firstDownloadAt ?? now, updatedAt: now };
      },
      { current: doc, attempts: 20 },
    );
  } catch (err) {
    payload.destroy();
    throw err;
  }
  if (!counted.updated) {
    payload.destroy();
    if (counted.reason === "not-found") throw new AppError("not-found", "no upload with this id");
    throw new AppError("conflict", "too many concurrent downloads of this upload; retry");
  }
  const download = counted.before.downloads + 1;
  const count: CountedDownload = { tenantId, uploadId, firstDownloadAt: counted.before.firstDownloadAt === null ? counted.after.firstDownloadAt : null };

  // (3) What the headers need, and the entry saying the download begins.
  let fileName: string | undefined;
  let contentType: string;
  try {
    fileName = doc.personal ? openField(dataKey, tenantId, uploadId, "fileName", doc.personal.fileName) : undefined;
    contentType = declaredContentType(doc, dataKey);
    await recordAudit(s, tenantId, caller, "upload.download-started", { type: "upload", id: uploadId }, {
      bytes,
      ...(span ? { range: `${span.start}-${span.end}` } : {}),
      download,
    });
  } catch (err) {
    payload.destroy();
    await releaseCount(s, count, log);
    throw err;
  }

  const notify = download === 1 && doc.notifyOnFirstDownload;
  const guard = guardDownload(s, { tenantId, uploadId, expiresAt: counted.after.expiresAt, kekVersion: doc.dataKey!.kekVersion });
  return {
    ...shape,
    contentType,
    ...(fileName !== undefined ? { fileName } : {}),
    body: accountedBody(s, caller, payload, { count, notify, guard, log }),
  };
}

/**
 * The payload's first authenticated bytes, ready (PayloadStore.open). A missing blob or damage at the start is an
 * integrity-error, logged with the ids; nothing was counted.
 */
async function openPayload(s: Services, caller: TenantCaller, doc: StoredUpload, dataKey: Buffer, span: { start: number; end: number } | undefined, log: Log): Promise<Readable> {
  const { tenantId, requestId } = caller;
  const content = doc.content!;
  try {
    return await s.payloads.open({ tenantId, uploadId: doc.id, blobName: content.blobName, header: content.header, size: doc.declaredSize }, dataKey, span);
  } catch (err) {
    if (err instanceof PayloadMissingError) {
      log.error("upload.content-missing", { tenantId, uploadId: doc.id, requestId });
      throw new AppError("integrity-error", "the stored content of this upload is missing; nothing was sent and the incident was logged");
    }
    if (err instanceof IntegrityError) {
      log.error("upload.integrity-failure", { tenantId, uploadId: doc.id, requestId, failure: err.failure, segment: err.segmentIndex });
      throw new AppError("integrity-error", "the stored content failed its integrity check; nothing was sent and the incident was logged");
    }
    throw err;
  }
}

/** A download's count, and the first-download time it set (null when it was not the first). */
interface CountedDownload {
  tenantId: string;
  uploadId: string;
  firstDownloadAt: string | null;
}

/** Gives back a download's count (it failed before its first byte): one fewer, and no first-download time it set. */
async function releaseCount(s: Services, count: CountedDownload, log: Log): Promise<void> {
  try {
    await s.uploads.update(count.tenantId, count.uploadId, (d) => {
      if (d.downloads === 0) return undefined;
      const downloads = d.downloads - 1;
      const firstDownloadAt = downloads === 0 && d.firstDownloadAt === count.firstDownloadAt ? null : d.firstDownloadAt;
      return { ...withoutMeta(d), downloads, firstDownloadAt, updatedAt: s.clock.now().toISOString() };
    });
  } catch (err) {
    log.error("upload.download-count-not-released", { tenantId: count.tenantId, uploadId: count.uploadId, errorName: (err as Error).name });
  }
}

/**
 * The download's body: the payload's plaintext, with the accounting around it. Writes `upload.download-ended`
 * (`bytes` sent, `completed`, and when not completed the `reason`): a completed download's entry before the stream
 * ends (so the response is not finished before its entry), a broken-off one's when the stream closes. A body closed
 * before its first byte gives the count back. The first-download notice is queued as the first byte leaves.
 */
function accountedBody(
  s: Services,
  caller: TenantCaller,
  payload: Readable,
  opts: { count: CountedDownload; notify: boolean; guard: DownloadGuard; log: Log },
): Readable {
  const { tenantId, uploadId } = opts.count;
  const { requestId } = caller;
  const log = opts.log;
  const state = { sent: 0, ended: false, reason: "closed-by-client" };
  const ended = (completed: boolean) =>
    recordAudit(s, tenantId, caller, "upload.download-ended", { type: "upload", id: uploadId }, {
      bytes: state.sent,
      completed,
      ...(completed ? {} : { reason: state.reason }),
    }).catch((err: unknown) => log.error("upload.audit-failed", { tenantId, uploadId, requestId, action: "upload.download-ended", errorName: (err as Error).name }));

  const source = payload[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  /** The next chunk of plaintext; a failure here is the payload's (damage found further in, storage gone). */
  const next = async (): Promise<IteratorResult<Buffer>> => {
    try {
      return await source.next();
    } catch (err) {
      if (err instanceof IntegrityError) {
        state.reason = "integrity-error";
        log.error("upload.integrity-failure", { tenantId, uploadId, requestId, failure: err.failure, segment: err.segmentIndex });
      } else {
        state.reason = "storage-error";
        log.warn("upload.download-interrupted", { tenantId, uploadId, requestId, errorName: (err as Error).name });
      }
      throw err;
    }
  };

  /** Access is checked again while the download runs (running-downloads.ts): what may not be sent is not. */
  const allowed = async (bytes: number): Promise<void> => {
    try {
      await opts.guard.beforeSending(bytes);
    } catch (err) {
      if (err instanceof DownloadStoppedError) {
        state.reason = err.reason;
        log.warn("upload.download-stopped", { tenantId, uploadId, requestId, reason: err.reason, bytes: state.sent });
      }
      throw err;
    }
  };

  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for (let r = await next(); !r.done; r = await next()) {
        await allowed(r.value.length);
        if (state.sent === 0 && opts.notify) await queueNotice(s, tenantId, uploadId, log);
        state.sent += r.value.length;
        // What is thrown here comes from the reader: the client went away.
        yield r.value;
      }
    } finally {
      payload.destroy();
      opts.guard.close();
    }
    state.ended = true;
    await ended(true);
  }

  const body = Readable.from(chunks(), { objectMode: false, highWaterMark: 1 });
  body.once("close", () => {
    opts.guard.close();
    if (state.ended) return;
    state.ended = true;
    payload.destroy();
    void ended(false);
    if (state.sent === 0) void releaseCount(s, opts.count, log);
  });
  return body;
}

/** Queues the first-download notice; a failure is logged, not thrown (the retention sweep re-queues lost notices). */
async function queueNotice(s: Services, tenantId: string, uploadId: string, log: Log): Promise<void> {
  try {
    await s.queues.send(QUEUES.notifications.name, notificationMessage, { kind: "first-download", tenantId, uploadId });
  } catch (err) {
    log.warn("upload.first-download-notice-not-queued", { tenantId, uploadId, errorName: (err as Error).name });
  }
}
