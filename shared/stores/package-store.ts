/**
 * Access and portability packages, and each tenant's privacy-information document, in Cosmos (the container
 * "subject-requests", one partition per tenant, beside the requests; every query here names its own `type`).
 *
 * A package record (`type: "dsr-package"`, id `pkg-<requestId>`) says what was decided and built for one request:
 * the tenant's Art. 15(4) decision on content that names other people too (its reason encrypted under the request's
 * data key), the stored zip (its blob, stream header, sizes and SHA-256), the package's own data key wrapped by the
 * tenant's KEK (destroying it erases the package everywhere at once), when it expires, the SHA-256 of the person's
 * link secret, the downloads counted, and its purge. Nothing personal in clear.
 *
 * The privacy-information document (`type: "privacy-information"`, id `privacy-information`) is the controller's own
 * text (Art. 15(1)(a)–(h)), not personal data of data subjects; it is stored as sent.
 */
import type { Container } from "@azure/cosmos";
import { z } from "zod";
import { PACKAGE_SCOPES, privacyDocumentSchema } from "../domain/subject-package";
import { crossPartition, isConflict, isNotFound, isPreconditionFailed, queryAll, readItem } from "./cosmos";

const iso = z.iso.datetime();
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const encrypted = z.string().startsWith("v1.");

export const PACKAGE_STATES = ["open", "building", "ready", "purged"] as const;
export type PackageState = (typeof PACKAGE_STATES)[number];

/**
 * The tenant's Art. 15(4) decision on uploads whose content names other data subjects too: those `included` go in
 * with their content, every other such upload is listed with its metadata only.
 */
export const contentDecisionSchema = z.object({
  at: iso,
  /** `key:<id>` of the tenant's API key. */
  by: z.string().max(100),
  /** The tenant's reason, encrypted with the request's data key (field `dsr.contentReason`). */
  reason: encrypted,
  included: z.array(z.string().max(64)).max(200),
});
export type ContentDecision = z.infer<typeof contentDecisionSchema>;

export const packageDocSchema = z.object({
  id: z.string().regex(/^pkg-dsr-[a-z2-7]{26}$/),
  tenantId: z.string(),
  type: z.literal("dsr-package"),
  requestId: z.string(),
  scope: z.enum(PACKAGE_SCOPES),
  state: z.enum(PACKAGE_STATES),
  createdAt: iso,
  updatedAt: iso,
  /** Art. 15(4): the tenant's decision on uploads whose content names other data subjects too; null until made. */
  contentDecision: contentDecisionSchema.nullable(),
  /** A build under way: its attempt (one blob per attempt) and since when. */
  building: z.object({ attemptId: z.string().regex(/^[a-z0-9-]{1,40}$/), since: iso }).nullable(),
  /** The package's own data key, wrapped by the tenant's KEK; null once purged (crypto-shredded). */
  dataKey: z.object({ wrapped: z.string(), kekVersion: z.string() }).nullable(),
  /** The stored zip; null until built and once purged. */
  content: z
    .object({
      blobName: z.string(),
      header: z.string(),
      ciphertextSize: z.number().int().nonnegative(),
      /** The zip's size in bytes. */
      size: z.number().int().nonnegative(),
      sha256: hex64,
      storedAt: iso,
    })
    .nullable(),
  /**
   * The uploads whose content was copied into the zip (files/...). Every destruction of an upload's content purges the
   * packages listed here (shared/usecases/package-purge.ts). Absent on records built before it was kept: such a package
   * holding any file is taken to hold a copy of every upload's content.
   */
  contentOf: z.array(z.string().max(64)).optional(),
  /** What went in: counts per section, the files and their bytes, and uploads whose content was withheld (Art. 15(4)). */
  counts: z.record(z.string().max(60), z.number().int().nonnegative()),
  builtAt: iso.nullable(),
  /** DSR_EXPORT_DAYS after it was built; then the retention sweep purges it. */
  expiresAt: iso.nullable(),
  /** SHA-256 of the secret of the person's download link (the secret itself is derived, never stored). */
  linkHash: hex64.nullable(),
  /** E-mails sent: to the person and the tenant ("package ready"). */
  notified: z.object({ subjectAt: iso.nullable(), tenantAt: iso.nullable() }),
  downloads: z.object({ tenant: z.number().int().nonnegative(), subject: z.number().int().nonnegative() }),
  purge: z
    .object({
      sweepId: z.string().nullable(),
      keyDestroyedAt: iso,
      blobsDeletedAt: iso.nullable(),
      /** A worker finishing the purge holds it until then. */
      leaseUntil: iso.nullable(),
      /**
       * Why it was purged: its download window ended (`expired`, the retention sweep), the person's erasure
       * (`subject-request`), the content of an upload it holds a copy of was destroyed (`upload-deleted`, naming it), or
       * the person's address was rectified (`rectification`: the package holds the old one).
       * Absent on purges recorded before the reason was kept (the retention sweep's).
       */
      reason: z.enum(["expired", "subject-request", "upload-deleted", "rectification"]).optional(),
      uploadId: z.string().max(64).nullable().optional(),
    })
    .nullable(),
});
export type PackageDoc = z.infer<typeof packageDocSchema>;
export type StoredPackage = PackageDoc & { _etag: string };

export const privacyInformationDocSchema = z.object({
  id: z.literal("privacy-information"),
  tenantId: z.string(),
  type: z.literal("privacy-information"),
  document: privacyDocumentSchema,
  version: z.number().int().positive(),
  updatedAt: iso,
  updatedBy: z.string(),
});
export type PrivacyInformationDoc = z.infer<typeof privacyInformationDocSchema>;
export type StoredPrivacyInformation = PrivacyInformationDoc & { _etag: string };

export const packageIdOf = (requestId: string) => `pkg-${requestId}`;

export class PackageStore {
  constructor(private readonly container: Container) {}

  get(tenantId: string, requestId: string): Promise<StoredPackage | undefined> {
    return readItem(this.container, packageDocSchema, packageIdOf(requestId), tenantId);
  }

  /** Creates the record; false when it exists already. */
  async create(doc: PackageDoc): Promise<boolean> {
    try {
      await this.container.items.create(packageDocSchema.parse(doc));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /**
   * For a breach's scope resolution: up to `limit` of the tenant's packages created within [from, to), with an id
   * after `afterId`, in id order (a keyset page), each with its request's id.
   */
  createdBetween(tenantId: string, from: string, to: string, afterId: string | null, limit: number): Promise<Array<{ id: string; requestId: string }>> {
    return queryAll(this.container, z.object({ id: z.string(), requestId: z.string() }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.id, c.requestId FROM c WHERE c.tenantId = @tenantId AND c.type = 'dsr-package' ` +
        "AND c.createdAt >= @from AND c.createdAt < @to AND c.id > @after ORDER BY c.id ASC",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@from", value: from },
        { name: "@to", value: to },
        { name: "@after", value: afterId ?? "" },
      ],
    }, tenantId);
  }

  /** Replaces the record if unchanged since `etag`; the stored record, or undefined when another writer won. */
  async replace(doc: PackageDoc, etag: string): Promise<StoredPackage | undefined> {
    try {
      const r = await this.container.item(doc.id, doc.tenantId).replace(packageDocSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return { ...doc, _etag: r.etag };
    } catch (err) {
      if (isPreconditionFailed(err) || isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * As holdingUploadContent, for many uploads at once (an erasure's or rectification's plan): one query over the
   * tenant's packages not purged yet, matched here, instead of one query per upload. Distinct request ids.
   */
  async holdingContentOfAny(tenantId: string, uploadIds: readonly string[]): Promise<string[]> {
    if (uploadIds.length === 0) return [];
    const rows = await queryAll(this.container, z.object({ requestId: z.string(), contentOf: z.array(z.string()).optional(), files: z.number().optional() }), {
      query: "SELECT c.requestId, c.contentOf, c.counts.files AS files FROM c WHERE c.tenantId = @tenantId AND c.type = 'dsr-package' AND c.state != 'purged'",
      parameters: [{ name: "@tenantId", value: tenantId }],
    }, tenantId);
    const wanted = new Set(uploadIds);
    const holding = rows.filter((r) => (r.contentOf === undefined ? (r.files ?? 0) > 0 : r.contentOf.some((id) => wanted.has(id))));
    return [...new Set(holding.map((r) => r.requestId))];
  }

  /**
   * The tenant's packages not purged yet that hold (or may hold) a copy of the upload's content: those listing it in
   * `contentOf`, and those built before `contentOf` was kept that hold any file. Their request ids.
   */
  async holdingUploadContent(tenantId: string, uploadId: string): Promise<string[]> {
    const rows = await queryAll(this.container, z.object({ requestId: z.string() }), {
      query:
        "SELECT c.requestId FROM c WHERE c.tenantId = @tenantId AND c.type = 'dsr-package' AND c.state != 'purged' " +
        "AND (ARRAY_CONTAINS(c.contentOf, @upload) OR (NOT IS_DEFINED(c.contentOf) AND c.counts.files > 0))",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@upload", value: uploadId },
      ],
    }, tenantId);
    return rows.map((r) => r.requestId);
  }

  // --- privacy information --------------------------------------------------------------------------------------------

  getPrivacyInformation(tenantId: string): Promise<StoredPrivacyInformation | undefined> {
    return readItem(this.container, privacyInformationDocSchema, "privacy-information", tenantId);
  }

  /** Writes the tenant's document: created when `etag` is undefined (false if it exists), else replaced if unchanged. */
  async savePrivacyInformation(doc: PrivacyInformationDoc, etag: string | undefined): Promise<boolean> {
    try {
      if (etag === undefined) await this.container.items.create(privacyInformationDocSchema.parse(doc));
      else await this.container.item(doc.id, doc.tenantId).replace(privacyInformationDocSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isConflict(err) || isPreconditionFailed(err) || isNotFound(err)) return false;
      throw err;
    }
  }

  // --- across tenants: the retention sweep only -----------------------------------------------------------------------

  /**
   * Across all tenants, for the retention sweep only: packages whose download window ended by `now` and that are not
   * purged, and purges whose worker's lease ran out, oldest first.
   */
  findExpiredAcrossTenants(now: Date, limit: number): Promise<Array<{ tenantId: string; id: string; requestId: string; expiresAt: string }>> {
    return crossPartition(this.container, z.object({ tenantId: z.string(), id: z.string(), requestId: z.string(), expiresAt: iso }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id, c.requestId, c.expiresAt FROM c WHERE c.type = 'dsr-package' AND c.state != 'purged' ` +
        "AND NOT IS_NULL(c.expiresAt) AND c.expiresAt <= @now ORDER BY c.expiresAt ASC",
      parameters: [{ name: "@now", value: now.toISOString() }],
    });
  }

  /** Across all tenants, for the retention receipt only: the packages a sweep purged. */
  findPurgedBySweepAcrossTenants(sweepId: string): Promise<Array<{ tenantId: string; requestId: string }>> {
    return crossPartition(this.container, z.object({ tenantId: z.string(), requestId: z.string() }), {
      query: "SELECT c.tenantId, c.requestId FROM c WHERE c.type = 'dsr-package' AND c.state = 'purged' AND c.purge.sweepId = @sweep",
      parameters: [{ name: "@sweep", value: sweepId }],
    });
  }
}
