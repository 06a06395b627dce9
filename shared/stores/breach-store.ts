/**
 * Personal-data breaches in Cosmos (container "breaches", one partition per tenant):
 *
 * - the operator's register, in the service partition (tenantId '_system'): one head document per breach (its
 *   status, its current version, the tenants in scope) and one immutable document per version (Art. 33(4), 33(5):
 *   created once, never replaced), which holds every tenant's scope and assessment;
 * - each affected tenant's part, in that tenant's own partition: its own projection of every version that changed
 *   it, its clocks, notices, acknowledgement, decisions and authority notifications. A tenant's queries read only its
 *   partition, so nothing of another tenant's part, nor how many other tenants there are, can reach it.
 *
 * Free texts are the operator's and the tenant's accounts of the incident; the API refuses e-mail addresses and CPR
 * numbers in them (shared/domain/breaches.ts), and the README asks for no names.
 */
import type { Container, SqlParameter } from "@azure/cosmos";
import { z } from "zod";
import { SYSTEM_TENANT } from "../config/resources";
import {
  AUTHORITY_METHODS,
  breachFieldsSchema,
  EXEMPTIONS,
  proposalSchema,
  resolvedScopeSchema,
  severityAssessmentSchema,
  tenantContentSchema,
} from "../domain/breaches";
import { WEBHOOK_EVENT_TYPES } from "../domain/webhooks";
import { crossPartition, isConflict, isPreconditionFailed, queryAll, queryPage, readItem, type Page } from "./cosmos";

const iso = z.iso.datetime();

export const BREACH_STATUSES = ["draft", "open", "dismissed"] as const;
export type BreachStatus = (typeof BREACH_STATUSES)[number];

export const tenantAssessmentSchema = z.object({
  tenantId: z.string(),
  resolved: resolvedScopeSchema,
  severity: severityAssessmentSchema,
  proposal: proposalSchema,
});
export type { ResolvedScope, TenantContent } from "../domain/breaches";
export type TenantAssessment = z.infer<typeof tenantAssessmentSchema>;

const actorSchema = z.string().min(1).max(100);

export const breachOriginSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("operator") }),
  z.object({
    kind: z.literal("anchor-alarm"),
    /** The tenant whose audit chain disagreed with its anchors (the operator's register may name it). */
    alarmTenantId: z.string(),
    reason: z.string().max(100),
    anchoredSeq: z.number().int().nullable(),
    headSeq: z.number().int().nullable(),
    detectedAt: iso,
  }),
]);
export type BreachOrigin = z.infer<typeof breachOriginSchema>;

export const breachHeadSchema = z.object({
  id: z.string(),
  tenantId: z.literal(SYSTEM_TENANT),
  type: z.literal("breach"),
  status: z.enum(BREACH_STATUSES),
  /** The current version (the newest version document). */
  version: z.number().int().positive(),
  /** The tenants in the current version's scope. */
  tenants: z.array(z.string()),
  /** Every tenant ever in scope: each has a part to keep (a tenant taken out of scope is told so). */
  everTenants: z.array(z.string()),
  /** The newest version every tenant's part is known to reflect (the sweep finishes what a crash left). */
  propagatedVersion: z.number().int().nonnegative(),
  origin: breachOriginSchema,
  createdAt: iso,
  updatedAt: iso,
  createdBy: actorSchema,
  confirmation: z.object({ at: iso, by: actorSchema, reason: z.string() }).nullable(),
  dismissal: z.object({ at: iso, by: actorSchema, reason: z.string() }).nullable(),
});
export type BreachHeadDoc = z.infer<typeof breachHeadSchema>;
export type StoredBreachHead = BreachHeadDoc & { _etag: string };

export const breachVersionSchema = z.object({
  id: z.string(),
  tenantId: z.literal(SYSTEM_TENANT),
  type: z.literal("breach-version"),
  breachId: z.string(),
  n: z.number().int().positive(),
  at: iso,
  by: actorSchema,
  requestId: z.string().nullable(),
  /** The top-level fields that differ from the version before (all of them for version 1). */
  changes: z.array(z.string()),
  fields: breachFieldsSchema,
  assessments: z.array(tenantAssessmentSchema),
});
export type BreachVersionDoc = z.infer<typeof breachVersionSchema>;

export const partVersionSchema = z.object({
  /** The tenant's own version number (1, 2, ...): it moves only when the tenant's part changed. */
  n: z.number().int().positive(),
  at: iso,
  /** The register's version it was made from (internal: version numbers of the register are not shown to tenants). */
  breachVersion: z.number().int().positive(),
  changes: z.array(z.string()),
  /** Null for the entry that records the tenant's withdrawal from the scope. */
  content: tenantContentSchema.nullable(),
  severity: severityAssessmentSchema.nullable(),
  proposal: proposalSchema.nullable(),
  /** Its entry is in the tenant's audit chain. */
  audited: z.boolean(),
});
export type PartVersion = z.infer<typeof partVersionSchema>;

export const NOTICE_WEBHOOK_STATES = ["pending", "delivered", "failed", "no-endpoint"] as const;

export const partNoticeSchema = z.object({
  /** The tenant version the notice tells of. */
  version: z.number().int().positive(),
  eventType: z.enum(WEBHOOK_EVENT_TYPES),
  createdAt: iso,
  emailMessageId: z.string(),
  /** When the e-mail service accepted the message; null while it has not. */
  emailAcceptedAt: iso.nullable(),
  emailAttempts: z.number().int().nonnegative(),
  /** Why the last attempt failed (a kind, never the address or the provider's text). */
  emailLastFailure: z.string().max(60).nullable(),
  /** Null when the tenant had no webhook endpoint when the notice was made. */
  webhookDeliveryId: z.string().nullable(),
  webhook: z.enum(NOTICE_WEBHOOK_STATES),
  webhookDeliveredAt: iso.nullable(),
  /** A later version's notice replaced this one before it was sent. */
  superseded: z.boolean(),
});
export type PartNotice = z.infer<typeof partNoticeSchema>;

export const breachPartSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("breach-part"),
  breachId: z.string(),
  status: z.enum(["open", "withdrawn"]),
  breachVersion: z.number().int().positive(),
  createdAt: iso,
  updatedAt: iso,
  versions: z.array(partVersionSchema).min(1),
  notices: z.array(partNoticeSchema),
  /** The notice still to be delivered by e-mail and when to try next (for the sweep's catch-up query). */
  pendingNotice: z.object({ version: z.number().int().positive(), nextAttemptAt: iso }).nullable(),
  controllerNotifiedAt: iso.nullable(),
  controllerNotifiedVia: z.enum(["email", "webhook", "acknowledgement"]).nullable(),
  acknowledgedAt: iso.nullable(),
  acknowledgedBy: actorSchema.nullable(),
  decisions: z.array(
    z.object({
      at: iso,
      by: actorSchema,
      version: z.number().int().positive(),
      notifyAuthority: z.boolean(),
      notifyPersons: z.boolean(),
      exemption: z.enum(EXEMPTIONS).nullable(),
      reasons: z.string(),
    }),
  ),
  authorityNotifications: z.array(
    z.object({
      recordedAt: iso,
      by: actorSchema,
      notifiedAt: iso,
      method: z.enum(AUTHORITY_METHODS),
      reference: z.string().nullable(),
      delayReason: z.string().nullable(),
      late: z.boolean(),
    }),
  ),
  noAuthorityNotification: z.object({ at: iso, by: actorSchema, reason: z.string() }).nullable(),
  withdrawnAt: iso.nullable(),
});
export type BreachPartDoc = z.infer<typeof breachPartSchema>;
export type StoredBreachPart = BreachPartDoc & { _etag: string };

export type PartUpdate = { updated: true; doc: StoredBreachPart } | { updated: false; reason: "not-found" | "unchanged" | "contended"; doc?: StoredBreachPart };

const versionId = (breachId: string, n: number) => `${breachId}.v${n}`;

export class BreachStore {
  constructor(private readonly container: Container) {}

  // --- the register (service partition) ---------------------------------------------------------------------

  getBreach(id: string): Promise<StoredBreachHead | undefined> {
    return readItem(this.container, breachHeadSchema, id, SYSTEM_TENANT);
  }

  /** Creates the head; false when a breach with this id exists (e.g. an alarm's draft opened before). */
  async createBreach(doc: BreachHeadDoc): Promise<boolean> {
    try {
      await this.container.items.create(breachHeadSchema.parse(doc));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Replaces the head if unchanged since `etag`; false when another writer changed it first. */
  async replaceBreach(doc: BreachHeadDoc, etag: string): Promise<boolean> {
    try {
      await this.container.item(doc.id, SYSTEM_TENANT).replace(breachHeadSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err)) return false;
      throw err;
    }
  }

  /** A page of the register, newest first, optionally of one status. */
  listBreaches(opts: { status?: BreachStatus; limit: number; cursor?: string }): Promise<Page<BreachHeadDoc>> {
    const filters = ["c.tenantId = @tenantId", "c.type = 'breach'"];
    const parameters: SqlParameter[] = [{ name: "@tenantId", value: SYSTEM_TENANT }];
    if (opts.status) {
      filters.push("c.status = @status");
      parameters.push({ name: "@status", value: opts.status });
    }
    return queryPage(this.container, breachHeadSchema, { query: `SELECT * FROM c WHERE ${filters.join(" AND ")} ORDER BY c.createdAt DESC`, parameters }, SYSTEM_TENANT, opts.limit, opts.cursor);
  }

  /** Open breaches some tenant's part may not reflect yet (their newest version was not seen everywhere). */
  findUnpropagated(limit: number): Promise<StoredBreachHead[]> {
    return queryAll(this.container, breachHeadSchema.extend({ _etag: z.string() }), {
      query: `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'breach' AND c.status = 'open' AND c.propagatedVersion < c.version ORDER BY c.updatedAt ASC`,
      parameters: [{ name: "@tenantId", value: SYSTEM_TENANT }],
    }, SYSTEM_TENANT);
  }

  /** Creates a version; false when that version exists (versions are written once and never replaced). */
  async createVersion(doc: BreachVersionDoc): Promise<boolean> {
    try {
      await this.container.items.create(breachVersionSchema.parse({ ...doc, id: versionId(doc.breachId, doc.n) }));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  async getVersion(breachId: string, n: number): Promise<BreachVersionDoc | undefined> {
    return readItem(this.container, breachVersionSchema, versionId(breachId, n), SYSTEM_TENANT);
  }

  /** Every version's number, time, author and changed fields, oldest first. */
  listVersions(breachId: string): Promise<Array<{ n: number; at: string; by: string; changes: string[] }>> {
    return queryAll(this.container, z.object({ n: z.number().int(), at: iso, by: z.string(), changes: z.array(z.string()) }), {
      query: `SELECT c.n, c["at"], c["by"], c.changes FROM c WHERE c.tenantId = @tenantId AND c.type = 'breach-version' AND c.breachId = @breach ORDER BY c.n ASC`,
      parameters: [
        { name: "@tenantId", value: SYSTEM_TENANT },
        { name: "@breach", value: breachId },
      ],
    }, SYSTEM_TENANT);
  }

  // --- a tenant's part (the tenant's own partition) ---------------------------------------------------------

  getPart(tenantId: string, breachId: string): Promise<StoredBreachPart | undefined> {
    return readItem(this.container, breachPartSchema, breachId, tenantId);
  }

  /** Creates the part; false when it exists. */
  async createPart(doc: BreachPartDoc): Promise<boolean> {
    try {
      await this.container.items.create(breachPartSchema.parse(doc));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Replaces the part if unchanged since `etag`; the new etag, or undefined when another writer changed it first. */
  async replacePart(doc: BreachPartDoc, etag: string): Promise<string | undefined> {
    try {
      const r = await this.container.item(doc.id, doc.tenantId).replace(breachPartSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return r.etag;
    } catch (err) {
      if (isPreconditionFailed(err)) return undefined;
      throw err;
    }
  }

  /**
   * Read-modify-write of a part under its etag, tried up to five times. `change` returns the new document, or
   * undefined for nothing to change (it may throw to refuse the change).
   */
  async updatePart(tenantId: string, breachId: string, change: (doc: StoredBreachPart) => BreachPartDoc | undefined): Promise<PartUpdate> {
    let doc = await this.getPart(tenantId, breachId);
    for (let attempt = 0; attempt < 5; attempt++) {
      if (!doc) return { updated: false, reason: "not-found" };
      const next = change(doc);
      if (!next) return { updated: false, reason: "unchanged", doc };
      const etag = await this.replacePart(next, doc._etag);
      if (etag) return { updated: true, doc: { ...next, _etag: etag } };
      doc = await this.getPart(tenantId, breachId);
    }
    return { updated: false, reason: "contended", ...(doc ? { doc } : {}) };
  }

  /** A page of the tenant's breaches, newest first. */
  listParts(tenantId: string, opts: { limit: number; cursor?: string }): Promise<Page<BreachPartDoc>> {
    return queryPage(this.container, breachPartSchema, {
      query: "SELECT * FROM c WHERE c.tenantId = @tenantId AND c.type = 'breach-part' ORDER BY c.createdAt DESC",
      parameters: [{ name: "@tenantId", value: tenantId }],
    }, tenantId, opts.limit, opts.cursor);
  }

  /**
   * Across all tenants, for the breach sweep only: parts whose notice is still to be delivered by e-mail and whose
   * next attempt was due at or before `dueBefore` (the catch-up for queue messages that were lost), oldest first.
   */
  findPendingNoticesAcrossTenants(dueBefore: Date, limit: number): Promise<Array<{ tenantId: string; breachId: string }>> {
    return crossPartition(this.container, z.object({ tenantId: z.string(), breachId: z.string() }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.breachId FROM c WHERE c.type = 'breach-part' ` +
        "AND NOT IS_NULL(c.pendingNotice) AND c.pendingNotice.nextAttemptAt <= @due ORDER BY c.pendingNotice.nextAttemptAt ASC",
      parameters: [{ name: "@due", value: dueBefore.toISOString() }],
    });
  }

  /** Reachability, for health: reads the container's definition. */
  async probe(): Promise<void> {
    await this.container.read();
  }
}
