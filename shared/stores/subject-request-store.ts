/**
 * Data-subject requests in Cosmos (container "subject-requests", one partition per tenant).
 *
 * A request document holds its state, deadlines, verification, pending work steps, notices and history. The person's
 * address and every free text a tenant sends with a request (details, reasons, the external id, a vouching
 * statement) are encrypted fields under the request's own data key, which is stored only wrapped by the tenant's KEK:
 * destroying it (closed-request retention) erases them all at once and leaves an anonymous record. The person is
 * found by `subjectHash`, the keyed hash of the normalised address (per-tenant secret), never by the address.
 * Codes and link tokens are stored only as hashes.
 *
 * Markers (same container, `type: "dsr-marker"`) make two things unique per tenant with a create-only write: an
 * external id (`kind: "external-id"`, id from an HMAC of the tenant's id) and the open request of one subject, type
 * and details (`kind: "open"`). Their ids are keyed hashes: nothing personal in clear.
 */
import type { Container, SqlParameter } from "@azure/cosmos";
import { z } from "zod";
import {
  DSR_OUTCOMES,
  DSR_STATUSES,
  DSR_TYPES,
  FINAL_DSR_STATUSES,
  OPEN_DSR_STATUSES,
  REJECTION_GROUNDS,
  UNVERIFIED_DSR_STATUSES,
  type DsrStatus,
  type DsrType,
} from "../domain/subject-requests";
import { crossPartition, inList, isConflict, isNotFound, isPreconditionFailed, queryAll, queryPage, readItem, type Page } from "./cosmos";
import { SubjectOutcomeStore } from "./subject-outcome-store";

const iso = z.iso.datetime();
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const encrypted = z.string().startsWith("v1.");

/** A work step's name: `verification-email`, `notices`, `start`, `announce`, or `work:<name>` of a type's module. */
export const STEP_NAME = /^[a-z][a-z0-9:-]{0,59}$/;

export const stepSchema = z.object({
  name: z.string().regex(STEP_NAME),
  /** Which queueing of the step this is: a message must name the same number to act. */
  seq: z.number().int().positive(),
  queuedAt: iso,
  /** Failed attempts so far. */
  attempts: z.number().int().nonnegative(),
  /** A worker running the step holds it until then. */
  leaseUntil: iso.nullable(),
  /** What the last failure was (an error name or kind; never a message text). */
  lastError: z.string().max(100).nullable(),
  /** Failed after its retries: the request shows needs-attention and the step waits for POST …/retry. */
  parked: z.boolean(),
});
export type RequestStep = z.infer<typeof stepSchema>;

const detailValue = z.union([z.string().max(200), z.number().finite(), z.boolean(), z.null()]);

export const HISTORY_EVENTS = ["created", "status", "extended"] as const;
export const historyEntrySchema = z.object({
  at: iso,
  event: z.enum(HISTORY_EVENTS),
  from: z.enum(DSR_STATUSES).nullable(),
  to: z.enum(DSR_STATUSES),
  /** Who: `key:<id>` (the tenant's API key), `subject` (the person, through the link), `system:<step>`. */
  by: z.string().min(1).max(100),
  /** The API request that caused it (for the audit entry), if any. */
  requestId: z.string().max(128).nullable(),
  /** Ids, kinds, dates and counts only (it becomes the audit entry's details and the webhook's data). */
  details: z.record(z.string().max(60), detailValue),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

/** One verification e-mail's code and link, as hashes. */
export const issuedSchema = z.object({
  gen: z.number().int().positive(),
  /** HMAC-SHA256 (per-tenant derived key) over the request id, the generation and the code. */
  codeHash: hex64,
  codeExpiresAt: iso,
  /** SHA-256 of the link token's secret part. */
  tokenHash: hex64,
  linkExpiresAt: iso,
  issuedAt: iso,
  sentAt: iso.nullable(),
  usedAt: iso.nullable(),
});
export type IssuedVerification = z.infer<typeof issuedSchema>;

/** E-mails to the person that a request owes (each sent once, with a stable message id). */
export const NOTICE_KINDS = ["extended", "rejected", "closed-unverified", "completed-no-data"] as const;
export type NoticeKind = (typeof NOTICE_KINDS)[number];
export const noticeSchema = z.object({ kind: z.enum(NOTICE_KINDS), createdAt: iso, sentAt: iso.nullable() });

export const VERIFICATION_METHODS = ["code", "link", "vouch"] as const;
export type VerificationMethod = (typeof VERIFICATION_METHODS)[number];

export const requestDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("subject-request"),
  requestType: z.enum(DSR_TYPES),
  status: z.enum(DSR_STATUSES),
  createdAt: iso,
  updatedAt: iso,
  /** When the tenant received the request: the clock starts here, not at the API call. */
  receivedAt: iso,
  /** Its due date had passed already when it was recorded (a lateReason was given). */
  late: z.boolean(),
  /** The due date in force: four weeks, or the extended date. */
  dueAt: iso,
  legalDueAt: iso,
  originalDueAt: iso,
  extendedAt: iso.nullable(),
  /** Keyed hash of the normalised address; null once erased. */
  subjectHash: hex64.nullable(),
  /** Keyed hash of the tenant's external id (its marker's key); null when none or once erased. */
  externalIdHash: hex64.nullable(),
  /** The id of the marker that makes it its subject's open request of this type and details (a keyed hash); null once erased. */
  openMarkerId: z.string().regex(/^dsrm-[0-9a-f]{64}$/).nullable().default(null),
  /** The request's data key wrapped by the tenant's KEK; null once erased (crypto-shredded). */
  dataKey: z.object({ wrapped: z.string(), kekVersion: z.string() }).nullable(),
  /** Encrypted with the data key; null once erased. */
  personal: z
    .object({
      email: encrypted,
      details: encrypted.nullable(),
      externalId: encrypted.nullable(),
      lateReason: encrypted.nullable(),
      vouchStatement: encrypted.nullable(),
      extensionReason: encrypted.nullable(),
      rejectionReason: encrypted.nullable(),
      cancellationReason: encrypted.nullable(),
    })
    .nullable(),
  verification: z.object({
    method: z.enum(VERIFICATION_METHODS).nullable(),
    verifiedAt: iso.nullable(),
    /** Unverified after this, the request closes as closed-unverified. */
    verifyBy: iso,
    wrongTries: z.number().int().nonnegative(),
    resends: z.number().int().nonnegative(),
    /** Verification e-mails asked for (1 + resends) and how many of those went out. */
    requested: z.number().int().nonnegative(),
    sent: z.number().int().nonnegative(),
    issued: z.array(issuedSchema).max(20),
    /** Where the person's link points (the origin the tenant called the API on). */
    linkOrigin: z.string().max(300),
  }),
  rejection: z.object({ ground: z.enum(REJECTION_GROUNDS), at: iso }).nullable(),
  cancelledAt: iso.nullable(),
  outcome: z.enum(DSR_OUTCOMES).nullable(),
  completedAt: iso.nullable(),
  /** When it reached a final state (the evidence period of closed-request retention runs from here). */
  closedAt: iso.nullable(),
  /** Why it needs attention, which step failed and the state a retry resumes. */
  attention: z.object({ reason: z.string().max(200), step: z.string().regex(STEP_NAME), since: iso, resumeTo: z.enum(DSR_STATUSES) }).nullable(),
  steps: z.array(stepSchema).max(20),
  /** The earliest `queuedAt` of the steps not parked, null when there are none: the sweep's catch-up key. */
  stepsCheckAt: iso.nullable(),
  stepSeq: z.number().int().nonnegative(),
  notices: z.array(noticeSchema).max(20),
  history: z.array(historyEntrySchema).max(100),
  /** How many history entries have had their audit entry, webhook event and deadline changes made. */
  announced: z.number().int().nonnegative(),
  /** State of a type's work module (parts 2 and 3), ids and counts only. */
  workState: z.record(z.string().max(60), detailValue),
  erasedAt: iso.nullable(),
});
export type RequestDoc = z.infer<typeof requestDocSchema>;
export type StoredRequest = RequestDoc & { _etag: string };
const storedSchema = requestDocSchema.extend({ _etag: z.string() });

export const MARKER_KINDS = ["external-id", "open"] as const;
export const markerSchema = z.object({
  id: z.string().regex(/^dsrm-[0-9a-f]{64}$/),
  tenantId: z.string(),
  type: z.literal("dsr-marker"),
  kind: z.enum(MARKER_KINDS),
  requestId: z.string(),
  /** For external ids: a keyed hash of the request as first sent, so the same id with another body is refused. */
  fingerprint: hex64.nullable(),
  createdAt: iso,
});
export type MarkerDoc = z.infer<typeof markerSchema>;
export type StoredMarker = MarkerDoc & { _etag: string };

export interface ListFilter {
  status?: DsrStatus;
  /** Due at or before this time. */
  dueBefore?: Date;
  /** Only requests overdue at this time, and those that need attention. */
  overdueAt?: Date;
}

const row = z.object({ tenantId: z.string(), id: z.string() });

export class SubjectRequestStore {
  /** What requests of part 3 leave behind (outcome records, restrictions, objections), in the same container. */
  readonly outcomes: SubjectOutcomeStore;

  constructor(private readonly container: Container) {
    this.outcomes = new SubjectOutcomeStore(container);
  }

  get(tenantId: string, id: string): Promise<StoredRequest | undefined> {
    return readItem(this.container, requestDocSchema, id, tenantId);
  }

  /** Creates the request; false when one with this id exists. */
  async create(doc: RequestDoc): Promise<boolean> {
    try {
      await this.container.items.create(requestDocSchema.parse(doc));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Replaces the request if unchanged since `etag`; the new etag, or undefined when another writer won. */
  async replace(doc: RequestDoc, etag: string): Promise<string | undefined> {
    try {
      const r = await this.container.item(doc.id, doc.tenantId).replace(requestDocSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return r.etag;
    } catch (err) {
      if (isPreconditionFailed(err)) return undefined;
      throw err;
    }
  }

  /**
   * A page of the tenant's requests, soonest due first.
   */
  list(tenantId: string, filter: ListFilter, limit: number, cursor: string | undefined): Promise<Page<RequestDoc>> {
    const filters = ["c.tenantId = @tenantId", "c.type = 'subject-request'"];
    const parameters: SqlParameter[] = [{ name: "@tenantId", value: tenantId }];
    if (filter.status) {
      filters.push("c.status = @status");
      parameters.push({ name: "@status", value: filter.status });
    }
    if (filter.dueBefore) {
      filters.push("c.dueAt <= @dueBefore");
      parameters.push({ name: "@dueBefore", value: filter.dueBefore.toISOString() });
    }
    if (filter.overdueAt) {
      const open = inList("open", OPEN_DSR_STATUSES);
      filters.push(`(c.status = 'needs-attention' OR (c.dueAt < @now AND c.status IN (${open.names})))`);
      parameters.push({ name: "@now", value: filter.overdueAt.toISOString() }, ...open.parameters);
    }
    return queryPage(this.container, requestDocSchema, { query: `SELECT * FROM c WHERE ${filters.join(" AND ")} ORDER BY c.dueAt ASC`, parameters }, tenantId, limit, cursor);
  }

  /** How many of the tenant's requests other than `exceptId` about this subject were ever verified. */
  async countVerifiedOfSubject(tenantId: string, subjectHash: string, exceptId: string): Promise<number> {
    const [n] = await queryAll(this.container, z.number().int(), {
      query:
        "SELECT VALUE COUNT(1) FROM c WHERE c.tenantId = @tenantId AND c.type = 'subject-request' AND c.subjectHash = @hash " +
        "AND c.id != @except AND NOT IS_NULL(c.verification.verifiedAt)",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@hash", value: subjectHash },
        { name: "@except", value: exceptId },
      ],
    }, tenantId);
    return n ?? 0;
  }

  /** The ids of the tenant's requests about this subject (by keyed hash), at most `limit`, oldest first. */
  idsOfSubject(tenantId: string, subjectHash: string, limit = 1000): Promise<string[]> {
    return queryAll(this.container, z.string(), {
      query: `SELECT TOP ${Math.floor(limit)} VALUE c.id FROM c WHERE c.tenantId = @tenantId AND c.type = 'subject-request' AND c.subjectHash = @hash ORDER BY c.createdAt ASC`,
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@hash", value: subjectHash },
      ],
    }, tenantId);
  }

  /**
   * For access packages: up to `limit` of the tenant's requests about this subject (by keyed hash) other than
   * `exceptId`, with an id after `afterId`, in id order (a keyset page).
   */
  pageOfSubject(tenantId: string, subjectHash: string, exceptId: string, afterId: string | null, limit: number): Promise<RequestDoc[]> {
    return queryAll(this.container, requestDocSchema, {
      query:
        `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'subject-request' AND c.subjectHash = @hash ` +
        "AND c.id != @except AND c.id > @after ORDER BY c.id ASC",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@hash", value: subjectHash },
        { name: "@except", value: exceptId },
        { name: "@after", value: afterId ?? "" },
      ],
    }, tenantId);
  }

  /** Up to `limit` of the tenant's requests whose data key is wrapped with another KEK version than `version`. */
  withOtherKekVersion(tenantId: string, version: string, limit: number): Promise<StoredRequest[]> {
    return queryAll(this.container, storedSchema, {
      query: `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'subject-request' AND NOT IS_NULL(c.dataKey) AND c.dataKey.kekVersion != @version`,
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@version", value: version },
      ],
    }, tenantId);
  }

  // --- markers ------------------------------------------------------------------------------------------------------

  getMarker(tenantId: string, id: string): Promise<StoredMarker | undefined> {
    return readItem(this.container, markerSchema, id, tenantId);
  }

  /** Creates the marker; false when it exists (someone else claimed it first). */
  async createMarker(doc: MarkerDoc): Promise<boolean> {
    try {
      await this.container.items.create(markerSchema.parse(doc));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Replaces the marker if unchanged since `etag`; false when another writer changed or removed it. */
  async replaceMarker(doc: MarkerDoc, etag: string): Promise<boolean> {
    try {
      await this.container.item(doc.id, doc.tenantId).replace(markerSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err) || isNotFound(err)) return false;
      throw err;
    }
  }

  /** Removes the marker if it still names `requestId` (another request may have taken it over since). */
  async deleteMarkerOf(tenantId: string, id: string, requestId: string): Promise<void> {
    const m = await this.getMarker(tenantId, id);
    if (!m || m.requestId !== requestId) return;
    try {
      await this.container.item(id, tenantId).delete({ accessCondition: { type: "IfMatch", condition: m._etag } });
    } catch (err) {
      if (!isNotFound(err) && !isPreconditionFailed(err)) throw err;
    }
  }

  // --- across tenants: the sweeps only --------------------------------------------------------------------------------

  /** Across all tenants, for the request sweep only: unverified requests whose verification window ended by `now`. */
  findVerificationLapsedAcrossTenants(now: Date, limit: number): Promise<Array<{ tenantId: string; id: string }>> {
    const unverified = inList("u", UNVERIFIED_DSR_STATUSES);
    return crossPartition(this.container, row, {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id FROM c WHERE c.type = 'subject-request' AND c.status IN (${unverified.names}) ` +
        "AND c.verification.verifyBy <= @now ORDER BY c.verification.verifyBy ASC",
      parameters: [{ name: "@now", value: now.toISOString() }, ...unverified.parameters],
    });
  }

  /** Across all tenants, for the request sweep only: requests with a step queued at or before `before` (its message may be lost). */
  findStepsDueAcrossTenants(before: Date, limit: number): Promise<Array<{ tenantId: string; id: string }>> {
    return crossPartition(this.container, row, {
      query: `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id FROM c WHERE c.type = 'subject-request' AND NOT IS_NULL(c.stepsCheckAt) AND c.stepsCheckAt <= @before ORDER BY c.stepsCheckAt ASC`,
      parameters: [{ name: "@before", value: before.toISOString() }],
    });
  }

  /** Across all tenants, for the request sweep only: verified requests of these types with no work under way. */
  findIdleVerifiedAcrossTenants(types: readonly DsrType[], limit: number): Promise<Array<{ tenantId: string; id: string }>> {
    if (types.length === 0) return Promise.resolve([]);
    const t = inList("t", types);
    return crossPartition(this.container, row, {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id FROM c WHERE c.type = 'subject-request' AND c.status = 'verified' ` +
        `AND IS_NULL(c.stepsCheckAt) AND c.requestType IN (${t.names})`,
      parameters: t.parameters,
    });
  }

  /** Across all tenants, for the retention sweep only: closed requests not yet erased that closed at or before `closedBefore`, oldest first. */
  findErasureCandidatesAcrossTenants(closedBefore: Date, limit: number): Promise<Array<{ tenantId: string; id: string; closedAt: string }>> {
    const final = inList("f", FINAL_DSR_STATUSES);
    return crossPartition(this.container, z.object({ tenantId: z.string(), id: z.string(), closedAt: iso }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id, c.closedAt FROM c WHERE c.type = 'subject-request' AND c.status IN (${final.names}) ` +
        "AND NOT IS_NULL(c.closedAt) AND c.closedAt <= @cutoff AND IS_NULL(c.erasedAt) ORDER BY c.closedAt ASC",
      parameters: [{ name: "@cutoff", value: closedBefore.toISOString() }, ...final.parameters],
    });
  }

  /** Reachability, for health: reads the container's definition. */
  async probe(): Promise<void> {
    await this.container.read();
  }
}
