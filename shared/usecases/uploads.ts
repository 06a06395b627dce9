/**
 * SafeData transfers: create an upload, stream its content in (encrypted on the way to Blob Storage), read its
 * metadata, stream it out (decrypted, whole or by range), list and delete. Every access is in the audit log.
 */
import { randomBytes } from "node:crypto";
import { pipeline, Readable, Transform, type TransformCallback } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import type { HttpRequest } from "@azure/functions";
import { z } from "zod";
import { BLOB_CONTAINERS, QUEUES } from "../config/resources";
import {
  HEADER_SIZE,
  IntegrityError,
  ciphertextSize,
  createDecryptStream,
  createEncryptStream,
  createRangeDecryptStream,
  lookupHash,
  normaliseEmail,
  planRange,
  uploadAssociatedData,
} from "../crypto";
import {
  MIME_TYPE,
  RECEIVING_LEASE_MS,
  admitDownload,
  contentDisposition,
  dataCategories,
  expiresAt,
  isGone,
  isHeaderSafe,
  maskEmail,
  mediaTypeEssence,
  newUploadId,
  parseRange,
  MAX_LIFE_DAYS,
  type UploadStatus,
} from "../domain/uploads";
import type { TenantPrincipal } from "../http/auth";
import { isNotFound } from "../errors";
import { AppError } from "../http/problem";
import { singleLine } from "../http/schemas";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import { blobPrefix, type StoredUpload, type UploadDoc } from "../stores/upload-store";
import { newWrappedDataKey, openField, sealField, unwrapUploadKey } from "./upload-keys";


const email = z.email().max(254);

export const createUploadInput = z.strictObject({
  senderReference: singleLine(200).describe("The tenant's own reference for the sender (e.g. a user id)"),
  recipients: z.array(email).min(1).max(50).describe("E-mail addresses of the people the content is for"),
  dataSubjects: z.array(email).min(1).max(1000).describe("E-mail addresses of the people the content is about"),
  categories: z
    .array(z.enum(dataCategories))
    .min(1)
    .max(dataCategories.length)
    .refine((a) => new Set(a).size === a.length, "must not repeat a category")
    .describe("Kinds of personal data in the content"),
  fileName: singleLine(255),
  contentType: z.string().max(255).regex(MIME_TYPE, "must be a media type like application/pdf"),
  size: z.number().int().nonnegative().describe("Exact size of the content in bytes"),
  maxDownloads: z.number().int().min(1).max(10_000).optional(),
  expiresInDays: z.number().int().min(1).max(MAX_LIFE_DAYS).optional().describe(`At most ${MAX_LIFE_DAYS} (the default)`),
  notifyOnFirstDownload: email.optional().describe("Address to tell when the content is first downloaded"),
});
export type CreateUploadInput = z.infer<typeof createUploadInput>;

export const uploadView = z.object({
  id: z.string(),
  status: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  categories: z.array(z.string()),
  contentType: z.string(),
  size: z.number(),
  maxDownloads: z.number().nullable(),
  downloads: z.number(),
  firstDownloadAt: z.string().nullable(),
  contentStoredAt: z.string().nullable(),
  recipients: z.object({ count: z.number(), masked: z.array(z.string()).optional() }),
  dataSubjects: z.object({ count: z.number() }),
  fileName: z.string().optional().describe("Absent once deleted"),
  senderReference: z.string().optional().describe("Absent once deleted"),
  contentUrl: z.string(),
  deletion: z.object({ reason: z.string(), at: z.string(), completed: z.boolean() }).optional(),
});
export type UploadView = z.infer<typeof uploadView>;

export const uploadSummary = uploadView.omit({ fileName: true, senderReference: true, recipients: true }).extend({
  recipients: z.object({ count: z.number() }),
});

const contentUrl = (id: string) => `/api/v1/uploads/${id}/content`;

function summary(doc: UploadDoc): z.infer<typeof uploadSummary> {
  return {
    id: doc.id,
    status: doc.status,
    createdAt: doc.createdAt,
    expiresAt: doc.expiresAt,
    categories: doc.categories,
    contentType: doc.contentType,
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
  // Unknown ids and other tenants' ids are the same answer: the query names the caller's tenant only.
  if (!doc) throw new AppError("not-found", "no upload with this id");
  return doc;
}

export async function createUpload(s: Services, p: TenantPrincipal, input: CreateUploadInput, requestId: string): Promise<{ id: string; status: UploadStatus; expiresAt: string; upload: { method: "PUT"; url: string; contentType: string; size: number } }> {
  if (input.size > s.settings.maxUploadBytes) {
    throw new AppError("validation-failed", `size may be at most ${s.settings.maxUploadBytes} bytes`, {
      errors: [{ path: "size", message: `must be at most ${s.settings.maxUploadBytes}` }],
    });
  }
  const uploadId = newUploadId();
  const now = s.clock.now();
  const { dataKey, wrapped } = await newWrappedDataKey(s, p.tenantId, uploadId, p.kekVersion);
  const lookupSecret = await s.keys.lookupSecret(p.tenantId);
  const seal = (field: Parameters<typeof sealField>[3], value: string) => sealField(dataKey, p.tenantId, uploadId, field, value);
  const lookupsOf = (addresses: string[]) => [...new Set(addresses.map((a) => lookupHash(lookupSecret, normaliseEmail(a))))];
  const doc: UploadDoc = {
    id: uploadId,
    tenantId: p.tenantId,
    type: "upload",
    status: "awaiting-content",
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    expiresAt: expiresAt(now, input.expiresInDays).toISOString(),
    createdBy: p.actor,
    categories: input.categories,
    contentType: input.contentType,
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
  await s.audit.append({
    tenantId: p.tenantId,
    actor: p.actor,
    action: "upload.created",
    target: { type: "upload", id: uploadId },
    requestId,
    details: { size: input.size, categories: input.categories, recipients: input.recipients.length, dataSubjects: input.dataSubjects.length, kekVersion: wrapped.kekVersion },
  });
  return {
    id: uploadId,
    status: doc.status,
    expiresAt: doc.expiresAt,
    upload: { method: "PUT", url: contentUrl(uploadId), contentType: input.contentType, size: input.size },
  };
}

export async function getUpload(s: Services, p: TenantPrincipal, uploadId: string): Promise<UploadView> {
  const doc = await mustGet(s, p.tenantId, uploadId);
  return viewOf(doc, doc.personal && doc.dataKey ? await unwrapUploadKey(s, doc) : undefined);
}

/** The metadata a tenant sees: counts and masked addresses; the personal fields only while the key exists. */
function viewOf(doc: UploadDoc, dataKey: Buffer | undefined): UploadView {
  const base = summary(doc);
  if (!doc.personal || !dataKey) return { ...base, recipients: { count: doc.recipientCount } };
  const open = (field: Parameters<typeof openField>[3], sealed: string) => openField(dataKey, doc.tenantId, doc.id, field, sealed);
  const recipients = JSON.parse(open("recipients", doc.personal.recipients)) as string[];
  return {
    ...base,
    recipients: { count: recipients.length, masked: recipients.map(maskEmail) },
    fileName: open("fileName", doc.personal.fileName),
    senderReference: open("senderReference", doc.personal.senderReference),
  };
}

export async function listUploads(s: Services, p: TenantPrincipal, opts: { status?: UploadStatus; limit: number; cursor?: string }) {
  const page = await s.uploads.list(p.tenantId, opts);
  return { items: page.items.map(summary), nextCursor: page.cursor };
}

/** Counts bytes through the pipe and fails the stream when there are more or fewer than declared. */
/**
 * Passes the body on while checking its size against the declared one, and watches for a body that stops arriving:
 * when the next stage wants data and none has come from the client for `idleMs`, it calls `onIdle` (which ends the
 * request), so a stalled client cannot hold a connection, buffers and the upload's "receiving" claim. Time spent
 * while storage is slow to take what it was given (back-pressure) does not count.
 */
class ExactSize extends Transform {
  seen = 0;
  private idle: NodeJS.Timeout | undefined;
  private onIdle: ((err: Error) => void) | undefined;
  constructor(
    private readonly expected: number,
    private readonly idleMs: number,
  ) {
    super();
  }
  /** Starts the idle watch. */
  watch(onIdle: (err: Error) => void): void {
    this.onIdle = onIdle;
    this.arm();
  }
  private arm(): void {
    const onIdle = this.onIdle;
    if (!onIdle || this.idle) return;
    this.idle = setTimeout(() => {
      onIdle(new AppError("request-timeout", `no bytes arrived for ${Math.round(this.idleMs / 1000)} s, after ${this.seen} of the declared ${this.expected}; nothing was stored, send it again`));
    }, this.idleMs);
    // The request holds the process open, not this timer.
    this.idle.unref();
  }
  private disarm(): void {
    clearTimeout(this.idle);
    this.idle = undefined;
  }
  /** The next stage wants data: from now on, waiting counts against the client. */
  override _read(size: number): void {
    this.arm();
    super._read(size);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.disarm();
    this.seen += chunk.length;
    if (this.seen > this.expected) return cb(new AppError("payload-too-large", `the body is larger than the declared size of ${this.expected} bytes; nothing was stored`));
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    this.onIdle = undefined;
    this.disarm();
    if (this.seen < this.expected) {
      return cb(new AppError("malformed-request", `the body ended after ${this.seen} of the declared ${this.expected} bytes; nothing was stored, send it again`));
    }
    cb();
  }
  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.onIdle = undefined;
    this.disarm();
    cb(err);
  }
}

/** Keeps the first HEADER_SIZE bytes the encryptor writes (the stream header), passing everything on. */
class HeaderTap extends Transform {
  private parts: Buffer[] = [];
  private have = 0;
  total = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.have < HEADER_SIZE) {
      const take = chunk.subarray(0, HEADER_SIZE - this.have);
      this.parts.push(Buffer.from(take));
      this.have += take.length;
    }
    this.total += chunk.length;
    cb(null, chunk);
  }
  header(): Buffer {
    return Buffer.concat(this.parts);
  }
}

// 4 MiB blocks: half the memory of 8 MiB at the same measured throughput (bench/RESULTS.md), still well above the
// 256 KiB Azure needs for high-throughput block blobs, and 512 blocks for the largest (2 GiB) upload.
const UPLOAD_BUFFER_BYTES = 4 * 1024 * 1024;
const UPLOAD_CONCURRENCY = 4;

export async function putContent(s: Services, p: TenantPrincipal, uploadId: string, request: HttpRequest, requestId: string, log: Log): Promise<UploadView> {
  const doc = await mustGet(s, p.tenantId, uploadId);
  const now = s.clock.now();
  if (isGone(doc.status) || now.getTime() >= Date.parse(doc.expiresAt)) {
    const expired = doc.status === "expired" || doc.deletion?.reason === "expired" || !isGone(doc.status);
    throw new AppError(expired ? "upload-expired" : "upload-deleted", `the upload ${expired ? "reached the end of its life" : "was deleted"}; create a new one`);
  }
  if (doc.status === "available") throw new AppError("conflict", "the content was already sent; content may be sent once");
  if (doc.status === "receiving" && doc.receiving && now.getTime() - Date.parse(doc.receiving.since) < RECEIVING_LEASE_MS) {
    throw new AppError("conflict", "the content is being sent by another request");
  }

  const declaredType = request.headers.get("content-type");
  if (declaredType === null || mediaTypeEssence(declaredType) !== mediaTypeEssence(doc.contentType)) {
    throw new AppError("unsupported-media-type", `send the content with 'Content-Type: ${doc.contentType}', as declared when the upload was created`);
  }
  const length = request.headers.get("content-length");
  if (length !== null) {
    if (!/^\d{1,16}$/.test(length)) throw new AppError("malformed-request", "Content-Length is not a number");
    const n = Number(length);
    if (n > s.settings.maxUploadBytes) throw new AppError("payload-too-large", `uploads may be at most ${s.settings.maxUploadBytes} bytes`);
    if (n > doc.declaredSize) throw new AppError("payload-too-large", `Content-Length ${n} is larger than the declared size of ${doc.declaredSize} bytes`);
    if (n < doc.declaredSize) throw new AppError("malformed-request", `Content-Length ${n} is smaller than the declared size of ${doc.declaredSize} bytes`);
  }

  // Claim the upload for this attempt; a concurrent PUT loses the etag race and gets 409.
  const attemptId = randomBytes(8).toString("hex");
  const claim = await s.uploads.update(
    p.tenantId,
    uploadId,
    (d) => ({ ...withoutMeta(d), status: "receiving", receiving: { attemptId, since: now.toISOString() }, updatedAt: now.toISOString() }),
    { current: doc, attempts: 1 },
  );
  if (!claim.updated) throw new AppError("conflict", "the content is being sent by another request");

  const blobName = `${blobPrefix(p.tenantId, uploadId)}${attemptId}`;
  const blob = s.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name).getBlockBlobClient(blobName);
  const size = new ExactSize(doc.declaredSize, s.settings.uploadIdleSeconds * 1000);
  const tap = new HeaderTap();
  let clientError: Error | undefined;
  let dataKey: Buffer;
  let body: Readable | undefined;
  try {
    dataKey = await unwrapUploadKey(s, doc);
    const input = request.body ? Readable.fromWeb(request.body as unknown as WebReadableStream<Uint8Array>) : Readable.from([]);
    body = input;
    input.once("error", (err) => (clientError ??= err));
    // pipeline() carries an error at any stage (client gone, wrong size, stalled) to the stream the uploader reads.
    pipeline(input, size, createEncryptStream(dataKey, uploadAssociatedData(p.tenantId, uploadId)), tap, () => undefined);
    // Ending the size check ends the pipeline at once; the body itself may take a while to let go of its source.
    size.watch((err) => {
      size.destroy(err);
      input.destroy(err);
    });
    // Blocks are staged as they arrive and committed only at the end: an interrupted upload leaves nothing visible.
    await blob.uploadStream(tap, UPLOAD_BUFFER_BYTES, UPLOAD_CONCURRENCY, {
      conditions: { ifNoneMatch: "*" },
      blobHTTPHeaders: { blobContentType: "application/octet-stream" },
      metadata: { format: "sds1", upload: uploadId },
    });
    if (tap.total !== ciphertextSize(doc.declaredSize)) {
      await blob.deleteIfExists();
      throw new Error("ciphertext size does not match the plaintext size");
    }
  } catch (err) {
    // Whatever failed (storage, the client, the size), nothing more is read: end the pipeline and its idle watch.
    size.destroy();
    body?.destroy();
    await releaseClaim(s, p.tenantId, uploadId, attemptId);
    if (err instanceof AppError && err.problem === "request-timeout") {
      log.warn("upload.content-stalled", { uploadId, received: size.seen, declared: doc.declaredSize });
      throw err;
    }
    if (err instanceof AppError) throw err;
    if (clientError) {
      log.warn("upload.content-interrupted", { uploadId, received: size.seen, declared: doc.declaredSize });
      throw new AppError("malformed-request", `the body ended after ${size.seen} of the declared ${doc.declaredSize} bytes; nothing was stored, send it again`);
    }
    throw err;
  }

  const stored = s.clock.now().toISOString();
  const content = { blobName, header: tap.header().toString("base64"), ciphertextSize: tap.total, storedAt: stored };
  const done = await s.uploads.update(p.tenantId, uploadId, (d) =>
    d.status === "receiving" && d.receiving?.attemptId === attemptId
      ? { ...withoutMeta(d), status: "available", receiving: null, content, updatedAt: stored }
      : undefined,
  );
  if (!done.updated) {
    // Deleted, or taken over, while we were storing: our blob must not outlive the record's say-so.
    await blob.deleteIfExists();
    throw new AppError("conflict", "the upload changed while the content was being stored; nothing was kept");
  }
  await s.audit.append({
    tenantId: p.tenantId,
    actor: p.actor,
    action: "upload.content-stored",
    target: { type: "upload", id: uploadId },
    requestId,
    details: { bytes: doc.declaredSize, storedBytes: tap.total },
  });
  s.telemetry.metric("upload.stored-bytes", doc.declaredSize);
  return viewOf(done.after, dataKey);
}

/** Puts an upload whose content attempt failed back to awaiting-content, if the attempt is still the current one. */
async function releaseClaim(s: Services, tenantId: string, uploadId: string, attemptId: string): Promise<void> {
  await s.uploads.update(tenantId, uploadId, (d) =>
    d.status === "receiving" && d.receiving?.attemptId === attemptId
      ? { ...withoutMeta(d), status: "awaiting-content", receiving: null, updatedAt: s.clock.now().toISOString() }
      : undefined,
  );
}

export interface ContentResponse {
  status: 200 | 206;
  headers: Record<string, string>;
  body: Readable;
}

/**
 * Opens the content for download. The download is counted and written to the audit log before the first byte
 * leaves; bytes leave only after their segment's authentication tag checked out. A damaged segment aborts the
 * response (the client sees a truncated body) and is logged.
 */
export async function openContent(s: Services, p: TenantPrincipal, uploadId: string, rangeHeader: string | null, requestId: string, log: Log): Promise<ContentResponse> {
  let doc = await mustGet(s, p.tenantId, uploadId);
  const size = doc.declaredSize;
  const range = parseRange(rangeHeader, size);
  if (range.kind === "malformed" || range.kind === "unsatisfiable") {
    const admitted = admitDownload({ ...doc, deletionReason: doc.deletion?.reason }, s.clock.now());
    if (!admitted.ok) throw new AppError(admitted.problem, admitted.detail);
    throw new AppError(
      "range-not-satisfiable",
      range.kind === "malformed" ? "the Range header must be one range like 'bytes=0-1023', 'bytes=1024-' or 'bytes=-512'" : `the range starts beyond the end of the ${size}-byte content`,
      { headers: { "content-range": `bytes */${size}` } },
    );
  }

  // Everything that can fail for reasons other than the caller (the key service) comes before the download is
  // counted, so such a failure never uses up a download or audits bytes that were never sent.
  const admittedNow = admitDownload({ ...doc, deletionReason: doc.deletion?.reason }, s.clock.now());
  if (!admittedNow.ok) throw new AppError(admittedNow.problem, admittedNow.detail);
  const dataKey = await unwrapUploadKey(s, doc);
  const fileName = doc.personal ? openField(dataKey, doc.tenantId, doc.id, "fileName", doc.personal.fileName) : undefined;
  // The response headers are settled before the download is counted, so they cannot fail after it. A stored type
  // that is not a valid header value (from before types were checked for that) is sent as plain bytes.
  const bytes = range.kind === "range" ? range.end - range.start + 1 : size;
  const headers: Record<string, string> = {
    "content-type": isHeaderSafe(doc.contentType) ? doc.contentType : "application/octet-stream",
    "accept-ranges": "bytes",
    "content-length": String(bytes),
  };
  if (fileName !== undefined) headers["content-disposition"] = contentDisposition(fileName);

  // Count the download (optimistic concurrency: with maxDownloads, parallel requests cannot exceed it).
  const counted = await s.uploads.update(
    p.tenantId,
    uploadId,
    (d) => {
      const admitted = admitDownload({ ...d, deletionReason: d.deletion?.reason }, s.clock.now());
      if (!admitted.ok) throw new AppError(admitted.problem, admitted.detail);
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
  await s.audit.append({
    tenantId: p.tenantId,
    actor: p.actor,
    action: "upload.downloaded",
    target: { type: "upload", id: uploadId },
    requestId,
    details: { bytes, ...(range.kind === "range" ? { range: `${range.start}-${range.end}` } : {}), download: doc.downloads + 1 },
  });
  if (first && doc.notifyOnFirstDownload) {
    await s.queues.send(QUEUES.notifications.name, notificationMessage, { kind: "first-download", tenantId: p.tenantId, uploadId });
  }

  const blob = s.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name).getBlobClient(content.blobName);
  const associatedData = uploadAssociatedData(p.tenantId, uploadId);
  let body: Transform;

  try {
    if (range.kind === "range") {
      const plan = planRange(size, range.start, range.end);
      const res = await blob.download(plan.ciphertextStart, plan.ciphertextEndInclusive - plan.ciphertextStart + 1, { maxRetryRequests: 3 });
      body = createRangeDecryptStream({
        dataKey,
        associatedData,
        header: Buffer.from(content.header, "base64"),
        firstSegment: plan.firstSegment,
        totalPlaintextSize: size,
        skip: plan.skip,
        length: plan.length,
      });
      pipeline(res.readableStreamBody!, body, () => undefined);
      headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
    } else {
      const res = await blob.download(0, undefined, { maxRetryRequests: 3 });
      body = createDecryptStream(dataKey, associatedData);
      pipeline(res.readableStreamBody!, body, () => undefined);
    }
  } catch (err) {
    if (isNotFound(err)) {
      log.error("upload.content-missing", { tenantId: p.tenantId, uploadId });
      throw new AppError("integrity-error", "the stored content of this upload is missing; the incident was logged");
    }
    throw err;
  }
  body.on("error", (err) => {
    if (err instanceof IntegrityError) {
      log.error("upload.integrity-failure", { tenantId: p.tenantId, uploadId, requestId, failure: err.failure, segment: err.segmentIndex });
    } else {
      log.warn("upload.download-interrupted", { tenantId: p.tenantId, uploadId, requestId, errorName: (err as Error).name });
    }
  });
  let verified: Readable;
  try {
    verified = await afterFirstChunk(body);
  } catch (err) {
    if (err instanceof IntegrityError) throw new AppError("integrity-error", "the stored content failed its integrity check; nothing was sent and the incident was logged");
    throw err;
  }
  return { status: range.kind === "range" ? 206 : 200, headers, body: verified };
}

/**
 * Waits until the stream has produced its first (verified) chunk, or ended, before the response starts: damage at
 * the start of the content then becomes a proper 500 problem instead of an aborted 200. Later damage aborts the
 * response mid-way; either way no unverified byte is sent.
 */
async function afterFirstChunk(stream: Readable): Promise<Readable> {
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  return Readable.from(
    (async function* () {
      try {
        if (!first.done) yield first.value as Buffer;
        for (let r = await it.next(); !r.done; r = await it.next()) yield r.value as Buffer;
      } finally {
        // A client that goes away ends this generator early: release the decryptor and the blob download with it.
        stream.destroy();
      }
    })(),
    { objectMode: false, highWaterMark: 1 },
  );
}

export const notificationMessage = z.object({
  kind: z.literal("first-download"),
  tenantId: z.string(),
  uploadId: z.string(),
});
export type NotificationMessage = z.infer<typeof notificationMessage>;
