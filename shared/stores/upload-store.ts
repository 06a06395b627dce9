/**
 * Upload records in Cosmos (container "uploads", one partition per tenant). Personal fields are encrypted with the
 * upload's own data key, which is stored only wrapped by the tenant's KEK; destroying the wrapped key (crypto-
 * shredding) makes the payload and those fields unreadable everywhere at once. A deleted upload keeps a tombstone:
 * ids, sizes, times and the reason, nothing personal.
 */
import type { Container, SqlParameter } from "@azure/cosmos";
import { z } from "zod";
import { assertTransition, dataCategories, FINAL_UPLOAD_STATUSES, LIVE_UPLOAD_STATUSES, UPLOAD_STATUSES, type UploadStatus } from "../domain/uploads";
import { AppError } from "../errors";
import { crossPartition, inList, isConflict, isNotFound, isPreconditionFailed, queryAll, queryPage, readItem, type Page } from "./cosmos";

export const DELETION_REASONS = ["sender-request", "expired", "subject-request", "tenant-offboarded"] as const;
export type DeletionReason = (typeof DELETION_REASONS)[number];

const encrypted = z.string().startsWith("v1.");
const iso = z.iso.datetime();

export const uploadDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("upload"),
  status: z.enum(UPLOAD_STATUSES),
  createdAt: iso,
  updatedAt: iso,
  expiresAt: iso,
  createdBy: z.string(),
  categories: z.array(z.enum(dataCategories)),
  /**
   * The declared Content-Type's essence and allow-listed charset only (plainContentType); the whole declared type is
   * `personal.contentType`. Records from before that may hold the whole type here until they are deleted.
   */
  contentType: z.string(),
  declaredSize: z.number().int().nonnegative(),
  maxDownloads: z.number().int().positive().nullable(),
  downloads: z.number().int().nonnegative(),
  firstDownloadAt: iso.nullable(),
  recipientCount: z.number().int().nonnegative(),
  subjectCount: z.number().int().nonnegative(),
  /** Encrypted with the data key; null once the upload is deleted. */
  personal: z
    .object({
      senderReference: encrypted,
      fileName: encrypted,
      recipients: encrypted,
      subjects: encrypted,
      notifyEmail: encrypted.nullable(),
      /** The Content-Type as declared, parameters and all; absent on records from before it was encrypted. */
      contentType: encrypted.optional(),
    })
    .nullable(),
  /** HMAC lookups of normalised addresses, to find a data subject's uploads; cleared on deletion. */
  lookups: z.object({ subjects: z.array(z.string()), recipients: z.array(z.string()) }),
  /** The data key wrapped by the tenant's KEK; null after crypto-shredding. */
  dataKey: z.object({ wrapped: z.string(), kekVersion: z.string() }).nullable(),
  receiving: z.object({ attemptId: z.string(), since: iso }).nullable(),
  content: z
    .object({
      blobName: z.string(),
      /** The stream header (public: format, salt, nonce prefix), so range reads need not fetch it. */
      header: z.string(),
      ciphertextSize: z.number().int().nonnegative(),
      storedAt: iso,
    })
    .nullable(),
  notifyOnFirstDownload: z.boolean(),
  /** The tenant said the data subject provided the content (GDPR Art. 20(1)): it goes into a portability package. Absent: no. */
  providedBySubject: z.boolean().optional(),
  senderNotifiedAt: iso.nullable(),
  deletion: z
    .object({
      reason: z.enum(DELETION_REASONS),
      requestedAt: iso,
      by: z.string(),
      requestId: z.string().nullable(),
      keyDestroyedAt: iso,
      blobsDeletedAt: iso.nullable(),
      auditSeq: z.number().int().nullable(),
      completedAt: iso.nullable(),
      /** A worker finishing the deletion holds this until the time given, so two sweeps never work on one item. */
      leaseUntil: iso.nullable(),
      /** The retention sweep that deleted it (for its deletion receipt); null for deletions on request. */
      sweepId: z.string().nullable().default(null),
    })
    .nullable(),
});
export type UploadDoc = z.infer<typeof uploadDocSchema>;
export type StoredUpload = UploadDoc & { _etag: string };

export type UpdateResult =
  | { updated: true; before: StoredUpload; after: StoredUpload }
  | { updated: false; reason: "not-found" | "unchanged" | "contended"; current?: StoredUpload };


/** What the purge needs to decide whether an upload is due (shared/domain/retention.ts `uploadPurgeDue`). */
export interface PurgeCandidate {
  tenantId: string;
  id: string;
  status: UploadStatus;
  expiresAt: string;
  deletion: { leaseUntil: string | null } | null;
}

const purgeCandidateSchema = z.object({
  tenantId: z.string(),
  id: z.string(),
  status: z.enum(UPLOAD_STATUSES),
  expiresAt: iso,
  deletion: z.object({ leaseUntil: iso.nullable() }).nullable(),
});

const idRow = z.object({ tenantId: z.string(), id: z.string() });

/** What a breach's scope resolution reads of an upload (shared/usecases/breach-persons.ts). */
const uploadScopeRowSchema = z.object({
  id: z.string(),
  categories: z.array(z.enum(dataCategories)),
  subjectCount: z.number().int().nonnegative(),
  recipientCount: z.number().int().nonnegative(),
  lookups: z.object({ subjects: z.array(z.string()), recipients: z.array(z.string()) }),
});
export type UploadScopeRow = z.infer<typeof uploadScopeRowSchema>;

export class UploadStore {
  constructor(private readonly container: Container) {}

  get(tenantId: string, uploadId: string): Promise<StoredUpload | undefined> {
    return readItem(this.container, uploadDocSchema, uploadId, tenantId);
  }

  /** Creates the record; returns its etag. */
  async create(doc: UploadDoc): Promise<string> {
    try {
      const { etag } = await this.container.items.create(uploadDocSchema.parse(doc));
      return etag;
    } catch (err) {
      if (isConflict(err)) throw new AppError("conflict", "an upload with this id already exists");
      throw err;
    }
  }

  /**
   * Removes a record whose creation could not be completed (its id was never given to anyone), only while it is
   * exactly as created (`etag`). Not a deletion: an upload anyone could know of is deleted with a tombstone.
   * Returns false when it changed or is gone.
   */
  async removeUnannounced(tenantId: string, uploadId: string, etag: string): Promise<boolean> {
    try {
      await this.container.item(uploadId, tenantId).delete({ accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err) || isNotFound(err)) return false;
      throw err;
    }
  }

  /** Writes `doc` if the stored record still has `etag`; returns the new etag, or undefined if someone else changed it first. */
  async replaceIfUnchanged(doc: UploadDoc, etag: string): Promise<string | undefined> {
    try {
      const { etag: next } = await this.container.item(doc.id, doc.tenantId).replace(uploadDocSchema.parse(doc), {
        accessCondition: { type: "IfMatch", condition: etag },
      });
      return next;
    } catch (err) {
      if (isPreconditionFailed(err)) return undefined;
      throw err;
    }
  }

  /**
   * Read-modify-write under optimistic concurrency. `change` gets the record as stored and returns the record to
   * write, or undefined to leave it as it is (it may also throw, e.g. to refuse a request); a write that loses to
   * another writer is retried on a fresh read, up to `attempts` times. Status changes are checked against the
   * upload state machine.
   */
  async update(
    tenantId: string,
    uploadId: string,
    change: (doc: StoredUpload) => UploadDoc | undefined,
    opts: { attempts?: number; current?: StoredUpload } = {},
  ): Promise<UpdateResult> {
    let doc = opts.current ?? (await this.get(tenantId, uploadId));
    for (let attempt = 0; attempt < (opts.attempts ?? 5); attempt++) {
      if (!doc) return { updated: false, reason: "not-found" };
      const next = change(doc);
      if (!next) return { updated: false, reason: "unchanged", current: doc };
      assertTransition(doc.status, next.status);
      const etag = await this.replaceIfUnchanged(next, doc._etag);
      if (etag) return { updated: true, before: doc, after: { ...next, _etag: etag } };
      doc = await this.get(tenantId, uploadId);
    }
    return { updated: false, reason: "contended", current: doc };
  }

  /** A page of the tenant's uploads, newest first, optionally of one status. */
  list(tenantId: string, opts: { status?: UploadStatus; limit: number; cursor?: string }): Promise<Page<UploadDoc>> {
    const filters = ["c.tenantId = @tenantId", "c.type = 'upload'"];
    const parameters: SqlParameter[] = [{ name: "@tenantId", value: tenantId }];
    if (opts.status) {
      filters.push("c.status = @status");
      parameters.push({ name: "@status", value: opts.status });
    }
    return queryPage(
      this.container,
      uploadDocSchema,
      { query: `SELECT * FROM c WHERE ${filters.join(" AND ")} ORDER BY c.createdAt DESC`, parameters },
      tenantId,
      opts.limit,
      opts.cursor,
    );
  }

  /** Ids of the tenant's uploads whose deletion is not complete (live or deleting), at most `limit`. */
  async unfinishedIds(tenantId: string, limit: number): Promise<string[]> {
    const final = inList("final", FINAL_UPLOAD_STATUSES);
    const rows = await queryAll(this.container, z.object({ id: z.string() }), {
      query: `SELECT TOP ${Math.floor(limit)} c.id FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' AND NOT (c.status IN (${final.names}))`,
      parameters: [{ name: "@tenantId", value: tenantId }, ...final.parameters],
    }, tenantId);
    return rows.map((r) => r.id);
  }

  /** When each of the tenant's live uploads expires (for the retention calendar). */
  async liveExpiries(tenantId: string): Promise<Date[]> {
    const live = inList("live", LIVE_UPLOAD_STATUSES);
    const rows = await queryAll(this.container, z.object({ expiresAt: iso }), {
      query: `SELECT c.expiresAt FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' AND c.status IN (${live.names})`,
      parameters: [{ name: "@tenantId", value: tenantId }, ...live.parameters],
    }, tenantId);
    return rows.map((r) => new Date(r.expiresAt));
  }

  /**
   * Up to `limit` of the tenant's uploads whose data key is wrapped with another KEK version than `version`
   * (the key re-wrap job's work list).
   */
  async withOtherKekVersion(tenantId: string, version: string, limit: number): Promise<StoredUpload[]> {
    const rows = await queryAll(this.container, uploadDocSchema.extend({ _etag: z.string() }), {
      query: `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' AND NOT IS_NULL(c.dataKey) AND c.dataKey.kekVersion != @version`,
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@version", value: version },
      ],
    }, tenantId);
    return rows;
  }

  /** How many of the tenant's uploads have a data key wrapped with another KEK version than `version`. */
  async countWithOtherKekVersion(tenantId: string, version: string): Promise<number> {
    const [n] = await queryAll(this.container, z.number().int(), {
      query: "SELECT VALUE COUNT(1) FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' AND NOT IS_NULL(c.dataKey) AND c.dataKey.kekVersion != @version",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@version", value: version },
      ],
    }, tenantId);
    return n ?? 0;
  }

  /**
   * How many of the tenant's uploads name this keyed address hash as a data subject or a recipient (deleted uploads
   * have had their hashes cleared, so they never count). For data-subject requests: is anything held about a person?
   */
  async countNamingPerson(tenantId: string, lookupHash: string): Promise<number> {
    const [n] = await queryAll(this.container, z.number().int(), {
      query:
        "SELECT VALUE COUNT(1) FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' " +
        "AND (ARRAY_CONTAINS(c.lookups.subjects, @hash) OR ARRAY_CONTAINS(c.lookups.recipients, @hash))",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@hash", value: lookupHash },
      ],
    }, tenantId);
    return n ?? 0;
  }

  /**
   * The ids of the tenant's uploads that name this keyed address hash as a data subject or a recipient (deleted ones
   * have had their hashes cleared), at most `limit`, sorted. For data-subject requests (erasure, rectification).
   */
  async idsNamingPerson(tenantId: string, lookupHash: string, limit = 100_000): Promise<string[]> {
    const ids = await queryAll(this.container, z.string(), {
      query:
        `SELECT TOP ${Math.floor(limit)} VALUE c.id FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' ` +
        "AND (ARRAY_CONTAINS(c.lookups.subjects, @hash) OR ARRAY_CONTAINS(c.lookups.recipients, @hash))",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@hash", value: lookupHash },
      ],
    }, tenantId);
    return ids.sort();
  }

  /**
   * For a breach's scope resolution: up to `limit` of the tenant's uploads created within [from, to] (inclusive),
   * with an id after `afterId`, in id order (a keyset page: the caller resumes from the last id it read). Only
   * what the resolution reads: categories, counts and the keyed lookup hashes (empty once deleted).
   */
  scopeRowsInWindow(tenantId: string, from: string, to: string, afterId: string | null, limit: number): Promise<UploadScopeRow[]> {
    return queryAll(this.container, uploadScopeRowSchema, {
      query:
        `SELECT TOP ${Math.floor(limit)} c.id, c.categories, c.subjectCount, c.recipientCount, c.lookups FROM c ` +
        "WHERE c.tenantId = @tenantId AND c.type = 'upload' AND c.createdAt >= @from AND c.createdAt <= @to AND c.id > @after ORDER BY c.id ASC",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@from", value: from },
        { name: "@to", value: to },
        { name: "@after", value: afterId ?? "" },
      ],
    }, tenantId);
  }

  /** For a breach's scope resolution: the same rows for named uploads of the tenant (ids not the tenant's are absent). */
  scopeRowsByIds(tenantId: string, ids: readonly string[]): Promise<UploadScopeRow[]> {
    if (ids.length === 0) return Promise.resolve([]);
    const list = inList("id", ids);
    return queryAll(this.container, uploadScopeRowSchema, {
      query: `SELECT c.id, c.categories, c.subjectCount, c.recipientCount, c.lookups FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' AND c.id IN (${list.names}) ORDER BY c.id ASC`,
      parameters: [{ name: "@tenantId", value: tenantId }, ...list.parameters],
    }, tenantId);
  }

  /**
   * For access and portability packages: up to `limit` of the tenant's uploads that name this keyed address hash as a
   * data subject or a recipient, with an id after `afterId`, in id order (a keyset page: the caller resumes from the
   * last id it read). Deleted uploads have had their hashes cleared and are never found.
   */
  pageNamingPerson(tenantId: string, lookupHash: string, afterId: string | null, limit: number): Promise<UploadDoc[]> {
    return queryAll(this.container, uploadDocSchema, {
      query:
        `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' AND c.id > @after ` +
        "AND (ARRAY_CONTAINS(c.lookups.subjects, @hash) OR ARRAY_CONTAINS(c.lookups.recipients, @hash)) ORDER BY c.id ASC",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@hash", value: lookupHash },
        { name: "@after", value: afterId ?? "" },
      ],
    }, tenantId);
  }

  /**
   * Across all tenants, for the retention sweep only (never a tenant's request): live uploads whose expiry is at
   * or before `now`, and deletions whose worker's lease ran out, oldest expiry first, at most `limit`. The purge
   * decides each with `uploadPurgeDue`; these are the same conditions, written so the database can select them.
   */
  async findPurgeCandidatesAcrossTenants(now: Date, limit: number): Promise<PurgeCandidate[]> {
    const live = inList("live", LIVE_UPLOAD_STATUSES);
    return crossPartition(this.container, purgeCandidateSchema, {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id, c.status, c.expiresAt, c.deletion FROM c WHERE c.type = 'upload' AND ` +
        `((c.status IN (${live.names}) AND c.expiresAt <= @now) OR ` +
        `(c.status = 'deleting' AND (IS_NULL(c.deletion.leaseUntil) OR c.deletion.leaseUntil <= @now))) ORDER BY c.expiresAt ASC`,
      parameters: [{ name: "@now", value: now.toISOString() }, ...live.parameters],
    });
  }

  /** Across all tenants, for the retention sweep only: uploads whose deletion by sweep `sweepId` is complete. */
  findDeletedBySweepAcrossTenants(sweepId: string): Promise<Array<{ tenantId: string; id: string; reason: DeletionReason }>> {
    return crossPartition(this.container, z.object({ tenantId: z.string(), id: z.string(), reason: z.enum(DELETION_REASONS) }), {
      query: "SELECT c.tenantId, c.id, c.deletion.reason AS reason FROM c WHERE c.type = 'upload' AND c.deletion.sweepId = @sweep AND NOT IS_NULL(c.deletion.completedAt)",
      parameters: [{ name: "@sweep", value: sweepId }],
    });
  }

  /**
   * Across all tenants, for the retention sweep only: available uploads downloaded at or before `downloadedBefore`
   * whose sender asked to be told and was not (a notice whose queue message was lost), at most `limit`.
   */
  findUnsentFirstDownloadNoticesAcrossTenants(downloadedBefore: Date, limit: number): Promise<Array<{ tenantId: string; id: string }>> {
    return crossPartition(this.container, idRow, {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id FROM c WHERE c.type = 'upload' AND c.status = 'available' AND c.notifyOnFirstDownload = true ` +
        "AND NOT IS_NULL(c.firstDownloadAt) AND c.firstDownloadAt <= @settled AND IS_NULL(c.senderNotifiedAt)",
      parameters: [{ name: "@settled", value: downloadedBefore.toISOString() }],
    });
  }

  /** Reachability, for health: reads the container's definition. */
  async probe(): Promise<void> {
    await this.container.read();
  }
}

