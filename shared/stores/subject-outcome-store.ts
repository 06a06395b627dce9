/**
 * What data-subject requests of part 3 leave behind, in the "subject-requests" container (one partition per tenant),
 * beside the requests (shared/stores/subject-request-store.ts reaches this store as `subjectRequests.outcomes`):
 *
 * - `dsr-outcome` (id `outcome:<request id>`): a request's work record: its plan (the ids it works through, sorted),
 *   its record for the tenant (the erasure certificate, the rectification, restriction, objection or withdrawal record:
 *   ids, counts, hashes, purposes, dates; shared/domain/erasure-certificate.ts), the audit entry that signs it, the
 *   recipients to tell (Art. 19) encrypted under the request's data key, and when the tenant said it told them;
 * - `dsr-restriction` (id `restriction:<subject hash>`): the person is restricted for the tenant (Art. 18): their
 *   uploads are not downloaded; `lift` is set when the tenant asks to lift it, and the document goes once the person
 *   was told (Art. 18(3));
 * - `dsr-objection` (id `objection:<subject hash>`): the purposes the person objected to (Art. 21); new uploads about
 *   them for those purposes are refused.
 *
 * The subject hash is the per-tenant keyed hash of the normalised address (as on requests and uploads): nothing
 * personal in clear. Every method names the tenant's partition.
 */
import type { Container } from "@azure/cosmos";
import { z } from "zod";
import { isConflict, isNotFound, isPreconditionFailed, queryAll, readItem, type StoredMeta } from "./cosmos";

const iso = z.iso.datetime();
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const encrypted = z.string().startsWith("v1.");

export const OUTCOME_KINDS = ["erasure", "rectification", "restriction", "objection", "withdraw-consent"] as const;
export type OutcomeKind = (typeof OUTCOME_KINDS)[number];

export const outcomeDocSchema = z.object({
  id: z.string().regex(/^outcome:dsr-[a-z2-7]{26}$/),
  tenantId: z.string(),
  type: z.literal("dsr-outcome"),
  kind: z.enum(OUTCOME_KINDS),
  requestId: z.string(),
  createdAt: iso,
  updatedAt: iso,
  /** The work's plan: ids per place (uploads, requests, …), sorted; the uploads whose recipients were read. */
  plan: z.object({
    ids: z.record(z.string().max(40), z.array(z.string().max(200)).max(100_000)),
    /** Keyed hashes the work moves from and to (rectification), or the one it erases (erasure). */
    fromHash: hex64.nullable(),
    toHash: hex64.nullable(),
  }),
  /** The distinct recipients of the uploads concerned, as stored (JSON array), encrypted under the request's data key. */
  recipients: encrypted.nullable(),
  recipientCount: z.number().int().nonnegative(),
  /** The record for the tenant (non-personal: ids, counts, hashes, purposes, dates), once made. */
  record: z.record(z.string(), z.unknown()).nullable(),
  /** SHA-256 of the record's canonical JSON, as its audit entry names it. */
  recordSha256: hex64.nullable(),
  /** The audit entry that records it: its position and hash in the tenant's chain. */
  audit: z.object({ seq: z.number().int().positive(), hash: hex64 }).nullable(),
  /** The tenant told the recipients (Art. 19). */
  recipientsNotified: z.object({ at: iso, by: z.string(), auditSeq: z.number().int().positive().nullable() }).nullable(),
});
export type OutcomeDoc = z.infer<typeof outcomeDocSchema>;
export type StoredOutcome = OutcomeDoc & StoredMeta;

export const restrictionDocSchema = z.object({
  id: z.string().regex(/^restriction:[0-9a-f]{64}$/),
  tenantId: z.string(),
  type: z.literal("dsr-restriction"),
  subjectHash: hex64,
  /** The request that restricted the person (the one `lift-restriction` names). */
  requestId: z.string(),
  since: iso,
  purposes: z.array(z.string().max(100)).max(50),
  /** Asked to be lifted: the person is told first (Art. 18(3)); the document goes once they were. */
  lift: z.object({ requestedAt: iso, by: z.string(), noticeSentAt: iso.nullable() }).nullable(),
});
export type RestrictionDoc = z.infer<typeof restrictionDocSchema>;
export type StoredRestriction = RestrictionDoc & StoredMeta;

export const objectionDocSchema = z.object({
  id: z.string().regex(/^objection:[0-9a-f]{64}$/),
  tenantId: z.string(),
  type: z.literal("dsr-objection"),
  subjectHash: hex64,
  /**
   * Each purpose objected to, with the request that recorded it. After the person's erasure the record is kept as a
   * suppression record (GDPR Art. 21(3), 17(3)(b)): the keyed hash and the purposes only, `requestId` and `since` null.
   */
  purposes: z.array(z.object({ purpose: z.string().max(100), requestId: z.string().nullable(), since: iso.nullable() })).max(200),
  /** When the person's erasure reduced it to a suppression record; absent or null before. */
  suppressedAt: iso.nullable().optional(),
  updatedAt: iso,
});
export type ObjectionDoc = z.infer<typeof objectionDocSchema>;
export type StoredObjection = ObjectionDoc & StoredMeta;

export const outcomeId = (requestId: string) => `outcome:${requestId}`;
export const restrictionId = (subjectHash: string) => `restriction:${subjectHash}`;
export const objectionId = (subjectHash: string) => `objection:${subjectHash}`;

async function create<T>(container: Container, schema: z.ZodType<T>, doc: T): Promise<boolean> {
  try {
    await container.items.create(schema.parse(doc) as object);
    return true;
  } catch (err) {
    if (isConflict(err)) return false;
    throw err;
  }
}

async function replace<T extends { id: string; tenantId: string }>(container: Container, schema: z.ZodType<T>, doc: T, etag: string): Promise<boolean> {
  try {
    await container.item(doc.id, doc.tenantId).replace(schema.parse(doc) as object, { accessCondition: { type: "IfMatch", condition: etag } });
    return true;
  } catch (err) {
    if (isPreconditionFailed(err) || isNotFound(err)) return false;
    throw err;
  }
}

async function remove(container: Container, tenantId: string, id: string, etag?: string): Promise<boolean> {
  try {
    await container.item(id, tenantId).delete(etag ? { accessCondition: { type: "IfMatch", condition: etag } } : undefined);
    return true;
  } catch (err) {
    if (isNotFound(err)) return true;
    if (isPreconditionFailed(err)) return false;
    throw err;
  }
}

export class SubjectOutcomeStore {
  constructor(private readonly container: Container) {}

  // --- outcomes ------------------------------------------------------------------------------------------------------

  getOutcome(tenantId: string, requestId: string): Promise<StoredOutcome | undefined> {
    return readItem(this.container, outcomeDocSchema, outcomeId(requestId), tenantId);
  }

  /** Creates the outcome document; false when it exists (an earlier attempt made it: use that one). */
  createOutcome(doc: OutcomeDoc): Promise<boolean> {
    return create(this.container, outcomeDocSchema, doc);
  }

  /** Replaces it if unchanged since `etag`; false when another writer changed it. */
  replaceOutcome(doc: OutcomeDoc, etag: string): Promise<boolean> {
    return replace(this.container, outcomeDocSchema, doc, etag);
  }

  // --- restrictions --------------------------------------------------------------------------------------------------

  getRestriction(tenantId: string, subjectHash: string): Promise<StoredRestriction | undefined> {
    return readItem(this.container, restrictionDocSchema, restrictionId(subjectHash), tenantId);
  }

  /** The restrictions in force (lifted or not yet) of any of these subject hashes. */
  restrictionsOf(tenantId: string, subjectHashes: readonly string[]): Promise<RestrictionDoc[]> {
    if (subjectHashes.length === 0) return Promise.resolve([]);
    return queryAll(this.container, restrictionDocSchema, {
      query: "SELECT * FROM c WHERE c.tenantId = @tenantId AND c.type = 'dsr-restriction' AND ARRAY_CONTAINS(@hashes, c.subjectHash)",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@hashes", value: [...subjectHashes] },
      ],
    }, tenantId);
  }

  createRestriction(doc: RestrictionDoc): Promise<boolean> {
    return create(this.container, restrictionDocSchema, doc);
  }

  replaceRestriction(doc: RestrictionDoc, etag: string): Promise<boolean> {
    return replace(this.container, restrictionDocSchema, doc, etag);
  }

  /** Removes it (if unchanged since `etag`, when given); true when it is gone. */
  deleteRestriction(tenantId: string, subjectHash: string, etag?: string): Promise<boolean> {
    return remove(this.container, tenantId, restrictionId(subjectHash), etag);
  }

  // --- objections ----------------------------------------------------------------------------------------------------

  getObjection(tenantId: string, subjectHash: string): Promise<StoredObjection | undefined> {
    return readItem(this.container, objectionDocSchema, objectionId(subjectHash), tenantId);
  }

  /** The objections of any of these subject hashes. */
  objectionsOf(tenantId: string, subjectHashes: readonly string[]): Promise<ObjectionDoc[]> {
    if (subjectHashes.length === 0) return Promise.resolve([]);
    return queryAll(this.container, objectionDocSchema, {
      query: "SELECT * FROM c WHERE c.tenantId = @tenantId AND c.type = 'dsr-objection' AND ARRAY_CONTAINS(@hashes, c.subjectHash)",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@hashes", value: [...subjectHashes] },
      ],
    }, tenantId);
  }

  createObjection(doc: ObjectionDoc): Promise<boolean> {
    return create(this.container, objectionDocSchema, doc);
  }

  replaceObjection(doc: ObjectionDoc, etag: string): Promise<boolean> {
    return replace(this.container, objectionDocSchema, doc, etag);
  }

  deleteObjection(tenantId: string, subjectHash: string, etag?: string): Promise<boolean> {
    return remove(this.container, tenantId, objectionId(subjectHash), etag);
  }
}
