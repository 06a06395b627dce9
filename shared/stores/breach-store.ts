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
import { batchCountsSchema, mergeBatchCounts, PROGRESS_SHARDS, progressShardOf, personHashSchema, rateStateSchema, type BatchCounts, type RateState } from "../domain/breach-persons";
import { dataCategories } from "../domain/uploads";
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

/** Why a persons run stopped: its part was withdrawn from the scope, or the tenant cancelled its instruction. */
export const STOP_REASONS = ["withdrawn", "cancelled"] as const;
export type StopReason = (typeof STOP_REASONS)[number];

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

/**
 * The persons of one version of a tenant's part: the scope resolution's progress and counts, and the notices to
 * the persons once the tenant instructed them (Art. 34). The persons themselves are documents of their own
 * (`breach-person`), in batches (`breach-person-batch`), so a part never holds them all.
 */
export const personsRunSchema = z.object({
  /** The tenant's part version resolved. */
  version: z.number().int().positive(),
  startedAt: iso,
  resolution: z.object({
    status: z.enum(["running", "done"]),
    /** What is being read: the scope's uploads, then (for a time window) the consent events and request packages made within it. */
    phase: z.enum(["uploads", "consents", "packages"]).default("uploads"),
    /** Resolution steps done (each reads a page of uploads), and the last upload id read. */
    page: z.number().int().nonnegative(),
    cursor: z.string().nullable(),
    records: z.number().int().nonnegative(),
    persons: z.number().int().nonnegative(),
    /** Persons named by records whose keyed hashes were cleared (purged or erased): counted from the records' counts, at most. */
    unreachable: z.number().int().nonnegative(),
    unreachableRecords: z.number().int().nonnegative(),
    categories: z.array(z.enum(dataCategories)),
    batches: z.number().int().nonnegative(),
    /** Persons found who had been told of an earlier version (in batches told after the others). */
    heardBefore: z.number().int().nonnegative().default(0),
    finishedAt: iso.nullable(),
  }),
  /** The tenant's instruction to tell the persons of this version; null until given. */
  notify: z
    .object({
      requestedAt: iso,
      by: actorSchema,
      /** Batches queued by the fan-out so far, and the last batch id queued (it resumes there). */
      queued: z.number().int().nonnegative(),
      cursor: z.string().nullable(),
      queuedAt: iso.nullable(),
      /** The alert that the estimate breaks BREACH_NOTICE_MAX_HOURS, sent once. */
      delayAlert: z.object({ at: iso, estimateAt: iso, deadlineAt: iso }).nullable(),
      /** When the breach sweep found no notice pending any more (it stops checking the estimate then). */
      completedAt: iso.nullable().default(null),
      /**
       * How the progress is counted: "counters", from the counter documents the batch workers keep (a few point
       * reads); "batches", by reading every batch (instructions stored before the counters existed).
       */
      progress: z.enum(["counters", "batches"]).default("batches"),
    })
    .nullable(),
  /**
   * Set when the run was stopped: the tenant was taken out of the breach's scope (its part withdrawn: "withdrawn"),
   * or the tenant cancelled its instruction (DELETE .../notify-persons: "cancelled", `by` the tenant's actor). Nothing
   * more of this run is sent (a cancelled run's resolution still finishes, so the count not told is exact), its
   * persons still pending are not told, no estimate is kept and no delay alert sent. Documents stored before
   * cancellations existed have no `by`.
   */
  stopped: z.object({ at: iso, reason: z.enum(STOP_REASONS), by: actorSchema.optional() }).nullable().default(null),
  /**
   * The notices of earlier versions of this part, as they stood when a later run replaced theirs (the tenant
   * instructed notices for a later version, or the part came back into the scope after a withdrawal), oldest first.
   */
  earlier: z
    .array(
      z.object({
        version: z.number().int().positive(),
        requestedAt: iso,
        sent: z.number().int().nonnegative(),
        failed: z.number().int().nonnegative(),
        unreachable: z.number().int().nonnegative(),
        /** Still pending when the run ended: not told of that version (a later version's notice tells them). */
        notTold: z.number().int().nonnegative(),
        endedAt: iso,
        /** replaced: a later version's notices were instructed; withdrawn / cancelled: the run had stopped (see `stopped`). */
        reason: z.enum(["replaced", ...STOP_REASONS]),
        /** Who cancelled them (the tenant's actor) when `reason` is "cancelled"; null otherwise and in older documents. */
        by: actorSchema.nullable().default(null),
      }),
    )
    .default([]),
});
export type EarlierNotices = PersonsRun["earlier"][number];
export type PersonsRun = z.infer<typeof personsRunSchema>;

export const PERSON_STATES = ["pending", "sent", "failed", "unreachable"] as const;
/** How a record names the person: an upload's data subject or recipient, the subject of consent events, the person an access or portability package was made for. */
export const PERSON_ROLES = ["data-subject", "recipient", "consent-subject", "request-subject"] as const;
export type PersonRole = (typeof PERSON_ROLES)[number];
export type PersonState = (typeof PERSON_STATES)[number];

/** One affected person of one version of a tenant's part: a keyed hash, never an address. */
export const breachPersonSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("breach-person"),
  breachId: z.string(),
  version: z.number().int().positive(),
  personHash: personHashSchema,
  roles: z.array(z.enum(PERSON_ROLES)),
  categories: z.array(z.enum(dataCategories)),
  /** Records that name the person (their addresses are read from there when the notice is sent), at most 5. */
  sources: z.array(z.object({ kind: z.enum(["upload", "consent-subject", "subject-request"]), id: z.string() })).max(5),
  /** The batch it is told in (the resolution step that found it first). */
  batch: z.string(),
  state: z.enum(PERSON_STATES),
  attempts: z.number().int().nonnegative(),
  lastFailure: z.string().max(60).nullable(),
  messageId: z.string(),
  sentAt: iso.nullable(),
  createdAt: iso,
});
export type BreachPersonDoc = z.infer<typeof breachPersonSchema>;
export type StoredBreachPerson = BreachPersonDoc & { _etag: string };

export const personBatchSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("breach-person-batch"),
  breachId: z.string(),
  version: z.number().int().positive(),
  batch: z.string(),
  personHashes: z.array(personHashSchema).max(1000),
  /**
   * resolved: named by the resolution, not to be worked before the tenant's instruction (the fan-out makes it
   * pending); pending: to be worked; done: every person told, given up or unreachable; stopped: its run was stopped
   * or a later version's replaced it.
   */
  state: z.enum(["resolved", "pending", "done", "stopped"]),
  sent: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  unreachable: z.number().int().nonnegative(),
  /** Not to be worked on before this (the send budget, a Retry-After, a retry's back-off). */
  nextAttemptAt: iso,
  /** A worker holds the batch until then. */
  leaseUntil: iso.nullable(),
  updatedAt: iso,
});
export type PersonBatchDoc = z.infer<typeof personBatchSchema>;
export type StoredPersonBatch = PersonBatchDoc & { _etag: string };

/** One of a version's PROGRESS_SHARDS counter documents: the counts of the batches that map to it, by batch key. */
export const progressShardSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("breach-person-progress"),
  breachId: z.string(),
  version: z.number().int().positive(),
  shard: z.number().int().nonnegative(),
  batches: z.record(z.string(), batchCountsSchema),
  updatedAt: iso,
});
type ProgressShardDoc = z.infer<typeof progressShardSchema>;

const BACKLOG_ID = "email-send-backlog";
const backlogDocSchema = z.object({
  id: z.literal(BACKLOG_ID),
  tenantId: z.literal(SYSTEM_TENANT),
  type: z.literal("email-send-backlog"),
  /** Notices still pending per run still sending, by `tenantId/breachId` (ids and counts only). */
  runs: z.record(z.string(), z.number().int().nonnegative()).default({}),
  at: iso,
});

/** A breach part with a persons run that was not stopped (for the breach sweep's queries). */
const LIVE_PERSONS_RUN =
  "c.type = 'breach-part' AND IS_DEFINED(c.persons) AND NOT IS_NULL(c.persons) AND (NOT IS_DEFINED(c.persons.stopped) OR IS_NULL(c.persons.stopped))";

/** A breach part whose persons run the tenant cancelled (open: a withdrawn part's run is the withdrawal's). */
const CANCELLED_PERSONS_RUN =
  "c.type = 'breach-part' AND c.status = 'open' AND IS_DEFINED(c.persons) AND NOT IS_NULL(c.persons) AND IS_DEFINED(c.persons.stopped) AND NOT IS_NULL(c.persons.stopped) AND c.persons.stopped.reason = 'cancelled'";

const RATE_ID = "email-send-rate";
const rateDocSchema = z.object({ id: z.literal(RATE_ID), tenantId: z.literal(SYSTEM_TENANT), type: z.literal("email-send-rate"), state: rateStateSchema });

export const personId = (breachId: string, version: number, hash: string) => `${breachId}.v${version}.p.${hash}`;
export const batchId = (breachId: string, version: number, batch: string) => `${breachId}.v${version}.b.${batch}`;
const progressShardId = (breachId: string, version: number, shard: number) => `${breachId}.v${version}.n.${shard}`;

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
      /** Claimed in time, but recorded only after the 72-hour deadline had passed (Art. 33(5)). */
      recordedAfterDeadline: z.boolean().default(false),
    }),
  ),
  noAuthorityNotification: z.object({ at: iso, by: actorSchema, reason: z.string() }).nullable(),
  withdrawnAt: iso.nullable(),
  /** The persons of the newest version resolved (and told, on the tenant's instruction); null before any. */
  persons: personsRunSchema.nullable().default(null),
  /** The tenant's public communications (Art. 34(3)(c)): what it published, where and when. */
  publicCommunications: z
    .array(z.object({ recordedAt: iso, by: actorSchema, publishedAt: iso, text: z.string(), where: z.string(), version: z.number().int().positive() }))
    .default([]),
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

  // --- the persons of a part (the tenant's own partition) ---------------------------------------------------

  /** Creates a person; false when it exists (a resolution step run again, or found by an earlier step). */
  async createPerson(doc: BreachPersonDoc): Promise<boolean> {
    try {
      await this.container.items.create(breachPersonSchema.parse(doc));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  getPerson(tenantId: string, breachId: string, version: number, hash: string): Promise<StoredBreachPerson | undefined> {
    return readItem(this.container, breachPersonSchema, personId(breachId, version, hash), tenantId);
  }

  /** Replaces a person if unchanged since `etag`; false when another writer changed it first. */
  async replacePerson(doc: BreachPersonDoc, etag: string): Promise<boolean> {
    try {
      await this.container.item(doc.id, doc.tenantId).replace(breachPersonSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err)) return false;
      throw err;
    }
  }

  /** Every notice of the tenant's breaches to the person with this keyed hash (for an access request), oldest first. */
  personNotices(tenantId: string, personHash: string): Promise<BreachPersonDoc[]> {
    return queryAll(this.container, breachPersonSchema, {
      query: "SELECT * FROM c WHERE c.tenantId = @tenantId AND c.type = 'breach-person' AND c.personHash = @hash ORDER BY c.createdAt ASC",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@hash", value: personHash },
      ],
    }, tenantId);
  }

  /** Creates a batch; false when it exists. */
  async createBatch(doc: PersonBatchDoc): Promise<boolean> {
    try {
      await this.container.items.create(personBatchSchema.parse(doc));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  getBatch(tenantId: string, breachId: string, version: number, batch: string): Promise<StoredPersonBatch | undefined> {
    return readItem(this.container, personBatchSchema, batchId(breachId, version, batch), tenantId);
  }

  /** Replaces a batch if unchanged since `etag`; the new etag, or undefined when another writer changed it first. */
  async replaceBatch(doc: PersonBatchDoc, etag: string): Promise<string | undefined> {
    try {
      const r = await this.container.item(doc.id, doc.tenantId).replace(personBatchSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return r.etag;
    } catch (err) {
      if (isPreconditionFailed(err)) return undefined;
      throw err;
    }
  }

  /** Up to `limit` batch names of one version of the tenant's part after `after` (by id), for the fan-out. */
  async batchNames(tenantId: string, breachId: string, version: number, after: string | null, limit: number): Promise<Array<{ id: string; batch: string }>> {
    return queryAll(this.container, z.object({ id: z.string(), batch: z.string() }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.id, c.batch FROM c WHERE c.tenantId = @tenantId AND c.type = 'breach-person-batch' ` +
        "AND c.breachId = @breach AND c.version = @version AND c.id > @after ORDER BY c.id ASC",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@breach", value: breachId },
        { name: "@version", value: version },
        { name: "@after", value: after ?? "" },
      ],
    }, tenantId);
  }

  /**
   * Every batch's counts recorded by the batch workers for one version of the tenant's part: PROGRESS_SHARDS point
   * reads, whatever the number of persons (a batch not yet worked on has no entry).
   */
  async recordedBatchCounts(tenantId: string, breachId: string, version: number): Promise<Array<{ batch: string; counts: BatchCounts }>> {
    const shards = await Promise.all(
      Array.from({ length: PROGRESS_SHARDS }, (_, k) => readItem(this.container, progressShardSchema, progressShardId(breachId, version, k), tenantId)),
    );
    return shards.flatMap((d) => (d ? Object.entries(d.batches).map(([batch, counts]) => ({ batch, counts })) : []));
  }

  /**
   * Records one batch's counts in its counter document (each count only grows: see mergeBatchCounts), under the
   * document's etag, tried again while other batches' workers write the same document. Throws when still contended
   * after 20 tries (the batch is worked again, which records the same counts).
   */
  async recordBatchCounts(tenantId: string, breachId: string, version: number, batch: string, counts: BatchCounts, now: Date): Promise<void> {
    const shard = progressShardOf(batch);
    const id = progressShardId(breachId, version, shard);
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await readItem(this.container, progressShardSchema, id, tenantId);
      const merged = mergeBatchCounts(cur?.batches[batch], counts);
      if (!merged) return;
      const doc: ProgressShardDoc = { id, tenantId, type: "breach-person-progress", breachId, version, shard, batches: { ...cur?.batches, [batch]: merged }, updatedAt: now.toISOString() };
      try {
        if (cur) await this.container.item(id, tenantId).replace(progressShardSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: cur._etag } });
        else await this.container.items.create(progressShardSchema.parse(doc));
        return;
      } catch (err) {
        if (!isConflict(err) && !isPreconditionFailed(err)) throw err;
      }
    }
    throw new Error("a breach's progress counter was contended; the batch is worked again");
  }

  /** Each batch's size and counts, for the progress of one version of the tenant's part (one row per 100 persons). */
  batchCounts(tenantId: string, breachId: string, version: number): Promise<Array<{ size: number; sent: number; failed: number; unreachable: number; nextAttemptAt: string; state: string }>> {
    return queryAll(this.container, z.object({ size: z.number().int(), sent: z.number().int(), failed: z.number().int(), unreachable: z.number().int(), nextAttemptAt: iso, state: z.string() }), {
      query:
        "SELECT ARRAY_LENGTH(c.personHashes) AS size, c.sent, c.failed, c.unreachable, c.nextAttemptAt, c.state FROM c " +
        "WHERE c.tenantId = @tenantId AND c.type = 'breach-person-batch' AND c.breachId = @breach AND c.version = @version",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@breach", value: breachId },
        { name: "@version", value: version },
      ],
    }, tenantId);
  }

  /**
   * Across all tenants, for the breach sweep only: batches still to be worked on whose time came at or before
   * `dueBefore` and that no worker holds at `now` (their message was lost, or their worker died), oldest first.
   */
  findDueBatchesAcrossTenants(dueBefore: Date, now: Date, limit: number): Promise<Array<{ tenantId: string; breachId: string; version: number; batch: string }>> {
    return crossPartition(this.container, z.object({ tenantId: z.string(), breachId: z.string(), version: z.number().int(), batch: z.string() }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.breachId, c.version, c.batch FROM c WHERE c.type = 'breach-person-batch' AND c.state = 'pending' ` +
        "AND c.nextAttemptAt <= @due AND (IS_NULL(c.leaseUntil) OR c.leaseUntil <= @now) ORDER BY c.nextAttemptAt ASC",
      parameters: [
        { name: "@due", value: dueBefore.toISOString() },
        { name: "@now", value: now.toISOString() },
      ],
    });
  }

  /** Across all tenants, for the breach sweep only: parts whose notices to persons are queued and not all done (nor stopped). */
  findSendingPersonRunsAcrossTenants(limit: number): Promise<Array<{ tenantId: string; breachId: string }>> {
    return crossPartition(this.container, z.object({ tenantId: z.string(), breachId: z.string() }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.breachId FROM c WHERE ${LIVE_PERSONS_RUN} ` +
        "AND NOT IS_NULL(c.persons.notify) AND NOT IS_NULL(c.persons.notify.queuedAt) AND (NOT IS_DEFINED(c.persons.notify.completedAt) OR IS_NULL(c.persons.notify.completedAt))",
      parameters: [],
    });
  }

  /**
   * Across all tenants, for the breach sweep only: parts whose persons are being resolved or told, and those whose
   * notices the tenant cancelled while their resolution still runs (it finishes, telling nobody, so the count not told
   * is exact).
   */
  findActivePersonRunsAcrossTenants(limit: number): Promise<Array<{ tenantId: string; breachId: string }>> {
    return crossPartition(this.container, z.object({ tenantId: z.string(), breachId: z.string() }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.breachId FROM c WHERE (${LIVE_PERSONS_RUN} ` +
        "AND (c.persons.resolution.status = 'running' OR (NOT IS_NULL(c.persons.notify) AND IS_NULL(c.persons.notify.queuedAt)))) " +
        `OR (${CANCELLED_PERSONS_RUN} AND c.persons.resolution.status = 'running')`,
      parameters: [],
    });
  }

  // --- the e-mail send budget (service partition) -----------------------------------------------------------

  /** The shared send budget's state and etag (undefined before the first send). */
  async getSendRate(): Promise<{ state: RateState; etag: string } | undefined> {
    const doc = await readItem(this.container, rateDocSchema, RATE_ID, SYSTEM_TENANT);
    return doc ? { state: doc.state, etag: doc._etag } : undefined;
  }

  /** Stores the budget's state if unchanged since `etag` (undefined: create it); false when another worker was first. */
  async saveSendRate(state: RateState, etag: string | undefined): Promise<boolean> {
    const doc = rateDocSchema.parse({ id: RATE_ID, tenantId: SYSTEM_TENANT, type: "email-send-rate", state });
    try {
      if (etag === undefined) await this.container.items.create(doc);
      else await this.container.item(RATE_ID, SYSTEM_TENANT).replace(doc, { accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isConflict(err) || isPreconditionFailed(err)) return false;
      throw err;
    }
  }

  /**
   * The notices to persons still pending across every breach and tenant, as the breach sweep last counted them (a
   * number only: they share one send budget, so each estimate waits behind all of them). Undefined before any count.
   */
  async getSendBacklog(): Promise<{ runs: Record<string, number>; at: string } | undefined> {
    const doc = await readItem(this.container, backlogDocSchema, BACKLOG_ID, SYSTEM_TENANT);
    return doc ? { runs: doc.runs, at: doc.at } : undefined;
  }

  /** Stores the sweep's count of the notices pending per run still sending (the last count wins). */
  async saveSendBacklog(runs: Record<string, number>, at: Date): Promise<void> {
    await this.container.items.upsert(backlogDocSchema.parse({ id: BACKLOG_ID, tenantId: SYSTEM_TENANT, type: "email-send-backlog", runs, at: at.toISOString() }));
  }

  /** Reachability, for health: reads the container's definition. */
  async probe(): Promise<void> {
    await this.container.read();
  }
}
