/**
 * Consent records in Cosmos (container "consents", one partition per tenant). Document kinds, by `type`:
 *
 * - `consent-purpose` (id `purpose:<key>`): what consent is asked for, its legal basis, and the last notice version
 *   assigned (versions are assigned from it with an etag check, so one is never given twice);
 * - `consent-notice` (id `notice:<key>:<version>`): the text shown, or its URL and the SHA-256 of the rendered text;
 *   created once, never replaced;
 * - `consent-subject` (id `subject:<lookup hash>`): a person the tenant recorded consent for, found by the keyed hash
 *   of the normalised e-mail; holds the person's opaque subject id, the address as an encrypted field and the data key
 *   (wrapped by the tenant's KEK) that every personal field of the person's events is encrypted with, so destroying
 *   it erases them all (crypto-shredding); and the purposes it has a clock for;
 * - `consent-event` (id = the event id): one decision, append-only; personal fields (full IP when the tenant keeps it,
 *   user agent, page URL) encrypted with the subject's data key; its keyed digest and, once written, its audit position;
 * - `consent-clock` (id `clock:<subject id>:<purpose>`): the history of one subject and purpose: the list of its
 *   events (id and the few facts the evidence clock, the state and the GPC history need), so a recording and a
 *   subject's reads go by id and never query; derived from it, when the evidence falls due (for the retention sweep)
 *   and the latest decision (for summaries); after an erasure, a tombstone saying what was erased by which sweep;
 * - `consent-settings` (id `settings`): whether the full IP address is kept (encrypted);
 * - `consent-link-secrets` (id `link-secrets`): the versions of the withdrawal links' signing secret, each encrypted
 *   under the tenant's KEK;
 * - `consent-link-use` (id `link-use:<token hash>`): marks a withdrawal link as used, so it withdraws once;
 * - `consent-link-rate` (id `link-rate:<token hash>`): a link's request counter for the current hour (expires by TTL);
 * - `consent-evidence` (id `evidence:<event id>`): the evidence file of one event (a screenshot, PDF or rendered
 *   notice): where its encrypted blob is (container "consent-evidence", shared/stores/evidence-blobs.ts), its type,
 *   size and SHA-256, and the audit entry that recorded it; while a PUT is receiving it, that attempt's claim.
 */
import type { Container, SqlParameter, SqlQuerySpec } from "@azure/cosmos";
import { z } from "zod";
import { DECISIONS, DIGEST_SCHEME, DIGEST_SCHEME_V2, LEGAL_BASES, METHODS, REQUEST_ORIGINS } from "../domain/consent";
import { EVIDENCE_TYPES } from "../domain/consent-evidence";
import { eventLocationSchema, gppHeaderSchema, tcfHeaderSchema } from "../domain/consent-signals";
import { crossPartition, isConflict, isNotFound, isPreconditionFailed, queryAll, readItem, type StoredMeta } from "./cosmos";

const iso = z.iso.datetime();
const encrypted = z.string().startsWith("v1.");
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const sealedKey = z.object({ wrapped: z.string(), kekVersion: z.string() });

/** How many characters of notice text (and URL) one instance keeps in memory at most (about 10 MB). */
export const NOTICE_CACHE_CHARS = 5_000_000;


export const purposeDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("consent-purpose"),
  key: z.string(),
  description: z.string(),
  legalBasis: z.enum(LEGAL_BASES),
  createdAt: iso,
  createdBy: z.string(),
  /** The last notice version assigned (0: none yet). */
  lastNoticeVersion: z.number().int().nonnegative(),
});
export type PurposeDoc = z.infer<typeof purposeDocSchema>;

export const noticeDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("consent-notice"),
  purposeKey: z.string(),
  version: z.number().int().positive(),
  language: z.string(),
  text: z.string().nullable(),
  url: z.string().nullable(),
  /** SHA-256 (hex) of the text's UTF-8, or as the tenant gave it for a notice by URL. */
  sha256: hex64,
  createdAt: iso,
  createdBy: z.string(),
});
export type NoticeDoc = z.infer<typeof noticeDocSchema>;

export const subjectDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("consent-subject"),
  subjectId: z.string(),
  /** HMAC-SHA256 of the normalised e-mail under the tenant's lookup secret. */
  lookup: hex64,
  /** The subject's data key, wrapped by the tenant's KEK. */
  dataKey: sealedKey,
  /** The address, encrypted with the data key. */
  email: encrypted,
  createdAt: iso,
  /** Set when created, cleared once its first event is recorded: a subject whose request died before that is removed. */
  unconfirmedSince: iso.nullable(),
  /**
   * Set while the retention sweep removes the subject after its last history was erased; a request recording a new
   * event for the subject clears it, which makes the removal (conditional on the etag) fail.
   */
  erasing: z.object({ since: iso }).nullable(),
  /**
   * The purposes the subject has a history (a clock) for, so its state is read by id (clocks, then their events).
   * Written before an event of a new purpose is audited; absent on subjects stored before it was kept (the reader
   * then queries the events once and writes it).
   */
  purposes: z.array(z.string()).optional(),
});
export type SubjectDoc = z.infer<typeof subjectDocSchema>;
export type StoredSubject = SubjectDoc & StoredMeta;

export const eventDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("consent-event"),
  subjectId: z.string(),
  subjectHash: hex64,
  purposeKey: z.string(),
  noticeVersion: z.number().int().positive().nullable(),
  noticeSha256: hex64.nullable(),
  decision: z.enum(DECISIONS),
  method: z.enum(METHODS),
  requestOrigin: z.enum(REQUEST_ORIGINS),
  propertyId: z.string().nullable(),
  language: z.string().nullable(),
  givenAt: iso,
  recordedAt: iso,
  ipTruncated: z.string().nullable(),
  gpc: z.boolean().nullable(),
  /** Encrypted with the subject's data key; each null when not sent (ipAddress: also when the tenant keeps no full IP). */
  personal: z.object({ ipAddress: encrypted.nullable(), userAgent: encrypted.nullable(), pageUrl: encrypted.nullable() }),
  /** The country of the IP address, given by the tenant or derived offline when recorded (null: neither). */
  location: eventLocationSchema.nullable().default(null),
  /**
   * The IAB strings as sent, encrypted with the subject's data key (a TC string can be personal data: CJEU C-604/22),
   * beside what their headers say, decoded with the IAB's libraries when recorded (shared/domain/consent-signals.ts).
   */
  signals: z
    .object({
      tcf: z.object({ sealed: encrypted, header: tcfHeaderSchema }).nullable(),
      gpp: z.object({ sealed: encrypted, header: gppHeaderSchema }).nullable(),
    })
    .default({ tcf: null, gpp: null }),
  /** Which content the digest covers: v1 (events recorded before countries and IAB strings) or v2. */
  digestScheme: z.enum([DIGEST_SCHEME, DIGEST_SCHEME_V2]).default(DIGEST_SCHEME),
  /** Who recorded it: `key:<id>` or `subject` (the person, through a withdrawal link). */
  actor: z.string(),
  requestId: z.string().nullable(),
  /** The withdrawal link it came through, if any. */
  linkId: z.string().nullable(),
  /** HMAC-SHA256 of the canonical content under the event's own key (shared/domain/consent.ts). */
  digest: hex64,
  /** The audit entry that records it; null until written (an event without one is not part of the record). */
  audit: z.object({ seq: z.number().int().positive(), hash: hex64 }).nullable(),
});
export type EventDoc = z.infer<typeof eventDocSchema>;

/**
 * What the clock keeps of one event of its history: what the evidence clock, the current state and the GPC history
 * need, and the id a reader fetches the event by. `seq` (the audit entry's position) is null until learned: the fact
 * is listed before the event's entry is written, and filled in later by a recording that needs it (GPC events).
 */
export const clockFactSchema = z.object({
  id: z.string(),
  decision: z.enum(DECISIONS),
  givenAt: iso,
  recordedAt: iso,
  noticeVersion: z.number().int().positive().nullable(),
  gpc: z.boolean().nullable(),
  seq: z.number().int().positive().nullable(),
});
export type ClockFact = z.infer<typeof clockFactSchema>;

export const clockDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("consent-clock"),
  subjectId: z.string(),
  purposeKey: z.string(),
  /** The latest decision, as the events say when it was computed. */
  latest: z.object({ decision: z.enum(DECISIONS), noticeVersion: z.number().int().nullable() }).nullable(),
  events: z.number().int().nonnegative(),
  /**
   * Every event of the history, audited or not (a recording lists its event before writing its audit entry; every
   * path that deletes events takes them out). Absent on clocks stored before it was kept: filled by one query of the
   * events the first time such a clock is read for a recording or a subject's reads.
   */
  facts: z.array(clockFactSchema).optional(),
  evidenceUntil: iso.nullable(),
  computedAt: iso,
  /** The retention sweep erasing this history holds it until `leaseUntil`; `erasedAt` makes the document a tombstone. */
  erasure: z
    .object({
      sweepId: z.string(),
      leaseUntil: iso,
      erasedAt: iso.nullable(),
      eventIds: z.array(z.string()),
    })
    .nullable(),
});
export type ClockDoc = z.infer<typeof clockDocSchema>;
export type StoredClock = ClockDoc & StoredMeta;

const SETTINGS_ID = "settings";
export const settingsDocSchema = z.object({
  id: z.literal(SETTINGS_ID),
  tenantId: z.string(),
  type: z.literal("consent-settings"),
  storeFullIp: z.boolean(),
  updatedAt: iso,
  updatedBy: z.string(),
});
export type ConsentSettingsDoc = z.infer<typeof settingsDocSchema>;

const LINK_SECRETS_ID = "link-secrets";
export const linkSecretSchema = z.object({
  version: z.number().int().positive(),
  /** 32 random bytes (base64), encrypted with the tenant's KEK, bound to the tenant and the version. */
  sealed: z.object({ kekVersion: z.string(), value: encrypted }),
  createdAt: iso,
  /** Null for the current secret; a rotated one verifies until then (links it signed have all expired). */
  retiresAt: iso.nullable(),
});
export type LinkSecret = z.infer<typeof linkSecretSchema>;
export const linkSecretsDocSchema = z.object({
  id: z.literal(LINK_SECRETS_ID),
  tenantId: z.string(),
  type: z.literal("consent-link-secrets"),
  secrets: z.array(linkSecretSchema).min(1).max(50),
  updatedAt: iso,
});
export type LinkSecretsDoc = z.infer<typeof linkSecretsDocSchema>;
export type StoredLinkSecrets = LinkSecretsDoc & StoredMeta;

export const linkUseDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("consent-link-use"),
  subjectId: z.string(),
  linkId: z.string(),
  claimedAt: iso,
  /** When the withdrawal was complete (every event written and audited); null while being written. */
  usedAt: iso.nullable(),
  eventIds: z.array(z.string()),
});
export type LinkUseDoc = z.infer<typeof linkUseDocSchema>;

export const linkRateDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("consent-link-rate"),
  subjectId: z.string(),
  windowStart: iso,
  count: z.number().int().nonnegative(),
  /** Cosmos TTL in seconds (the container's TTL is on per item): the counter goes once its window is long over. */
  ttl: z.number().int().positive(),
});
export type LinkRateDoc = z.infer<typeof linkRateDocSchema>;

export const evidenceDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("consent-evidence"),
  eventId: z.string(),
  subjectId: z.string(),
  purposeKey: z.string(),
  /** The type declared and found in the first bytes (they match, or nothing was stored). */
  contentType: z.enum(EVIDENCE_TYPES),
  /** The plaintext size in bytes. */
  size: z.number().int().positive(),
  /** A PUT receiving the file: its attempt (one blob per attempt) and since when. Null once stored. */
  receiving: z.object({ attemptId: z.string(), since: iso }).nullable(),
  /** The stored file: its blob, stream header (base64), ciphertext size, the plaintext's SHA-256. Null while receiving. */
  content: z.object({ blobName: z.string(), header: z.string(), ciphertextSize: z.number().int().nonnegative(), sha256: hex64, storedAt: iso }).nullable(),
  /** The audit entry `consent.evidence-stored`, once written. */
  audit: z.object({ seq: z.number().int().positive(), hash: hex64 }).nullable(),
  createdAt: iso,
});
export type EvidenceDoc = z.infer<typeof evidenceDocSchema>;
export type StoredEvidence = EvidenceDoc & StoredMeta;

const storedSubjectSchema = subjectDocSchema.extend({ _etag: z.string() });

/** Runs a conditional write; false when another writer got there first (409 on create, 412 on replace). */
async function conditional(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (err) {
    if (isConflict(err) || isPreconditionFailed(err)) return false;
    throw err;
  }
}

export class ConsentStore {
  constructor(private readonly container: Container) {}

  /** Notice versions read, by tenant, purpose and version (see getNotice). */
  private readonly notices = new Map<string, NoticeDoc>();
  private noticeChars = 0;

  /** How many queries this store has sent since it was made (tests check that a path sends none). */
  queriesSent = 0;

  private queryAll<T>(schema: z.ZodType<T>, query: SqlQuerySpec, tenantId: string): Promise<T[]> {
    this.queriesSent++;
    return queryAll(this.container, schema, query, tenantId);
  }

  private crossPartition<T>(schema: z.ZodType<T>, query: SqlQuerySpec): Promise<T[]> {
    this.queriesSent++;
    return crossPartition(this.container, schema, query);
  }

  // --- purposes and notices -----------------------------------------------------------------------------------

  getPurpose(tenantId: string, key: string): Promise<(PurposeDoc & StoredMeta) | undefined> {
    return readItem(this.container, purposeDocSchema, `purpose:${key}`, tenantId);
  }

  /** Creates a purpose; false when one with this key exists. */
  createPurpose(doc: PurposeDoc): Promise<boolean> {
    return conditional(() => this.container.items.create(purposeDocSchema.parse(doc)));
  }

  /** Replaces a purpose if unchanged since `etag`; false when another writer changed it first. */
  replacePurpose(doc: PurposeDoc, etag: string): Promise<boolean> {
    return conditional(() => this.container.item(doc.id, doc.tenantId).replace(purposeDocSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } }));
  }

  /** The tenant's purposes, by key (at most `limit`). */
  listPurposes(tenantId: string, limit = 500): Promise<PurposeDoc[]> {
    return this.queryAll(purposeDocSchema, {
      query: `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'consent-purpose' ORDER BY c.key ASC`,
      parameters: [{ name: "@tenantId", value: tenantId }],
    }, tenantId);
  }

  /** Creates a notice version; false when this version exists (never replaced). */
  createNotice(doc: NoticeDoc): Promise<boolean> {
    return conditional(() => this.container.items.create(noticeDocSchema.parse(doc)));
  }

  /**
   * A notice version. Notices are never edited once created, so each found is kept in this instance's memory and
   * read from there after (no expiry; at most NOTICE_CACHE_CHARS of text, the oldest dropped first). One not found is
   * not kept (it may be written next).
   */
  async getNotice(tenantId: string, purposeKey: string, version: number): Promise<NoticeDoc | undefined> {
    const key = `${tenantId}\n${purposeKey}\n${version}`;
    const cached = this.notices.get(key);
    if (cached) return cached;
    const doc = await readItem(this.container, noticeDocSchema, `notice:${purposeKey}:${version}`, tenantId);
    if (!doc) return undefined;
    const { _etag: _ignored, ...notice } = doc;
    const size = (n: NoticeDoc) => (n.text?.length ?? 0) + (n.url?.length ?? 0) + 200;
    this.noticeChars += size(notice);
    this.notices.set(key, notice);
    for (const [k, n] of this.notices) {
      if (this.noticeChars <= NOTICE_CACHE_CHARS) break;
      this.notices.delete(k);
      this.noticeChars -= size(n);
    }
    return notice;
  }

  /** A purpose's notice versions, oldest first. */
  listNotices(tenantId: string, purposeKey: string): Promise<NoticeDoc[]> {
    return this.queryAll(noticeDocSchema, {
      query: "SELECT * FROM c WHERE c.tenantId = @tenantId AND c.type = 'consent-notice' AND c.purposeKey = @purpose ORDER BY c.version ASC",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@purpose", value: purposeKey },
      ],
    }, tenantId);
  }

  // --- subjects -------------------------------------------------------------------------------------------------

  /** The subject whose normalised e-mail has this keyed hash. */
  getSubjectByLookup(tenantId: string, lookup: string): Promise<StoredSubject | undefined> {
    return readItem(this.container, subjectDocSchema, `subject:${lookup}`, tenantId);
  }

  /** The subject document with this id (`subject:<lookup hash>`). */
  getSubjectDoc(tenantId: string, id: string): Promise<StoredSubject | undefined> {
    return readItem(this.container, subjectDocSchema, id, tenantId);
  }

  /** The subject with this opaque id (a withdrawal link names it so). */
  async getSubjectById(tenantId: string, subjectId: string): Promise<StoredSubject | undefined> {
    const [doc] = await this.queryAll(storedSubjectSchema, {
      query: "SELECT TOP 1 * FROM c WHERE c.tenantId = @tenantId AND c.type = 'consent-subject' AND c.subjectId = @subject",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@subject", value: subjectId },
      ],
    }, tenantId);
    return doc;
  }

  /** Creates the subject; false when one with this lookup hash exists already (another request made it first). */
  createSubject(doc: SubjectDoc): Promise<boolean> {
    return conditional(() => this.container.items.create(subjectDocSchema.parse(doc)));
  }

  /** Replaces the subject if unchanged since `etag`; false otherwise. */
  replaceSubject(doc: SubjectDoc, etag: string): Promise<boolean> {
    return conditional(() => this.container.item(doc.id, doc.tenantId).replace(subjectDocSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } }));
  }

  /** Deletes the subject (its data key and encrypted address) if unchanged since `etag`; false otherwise or when gone. */
  async deleteSubject(tenantId: string, id: string, etag: string): Promise<boolean> {
    try {
      await this.container.item(id, tenantId).delete({ accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err) || isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Across all tenants, for the retention sweep only: subjects left unconfirmed or being removed since at or before
   * `before` (a request or a sweep died half-way), oldest first, at most `limit`. The worker decides each.
   */
  findUnsettledSubjectsAcrossTenants(before: Date, limit: number): Promise<Array<{ tenantId: string; id: string; since: string }>> {
    return this.crossPartition(z.object({ tenantId: z.string(), id: z.string(), unconfirmedSince: iso.nullable(), erasing: z.object({ since: iso }).nullable() }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id, c.unconfirmedSince, c.erasing FROM c WHERE c.type = 'consent-subject' ` +
        "AND ((NOT IS_NULL(c.unconfirmedSince) AND c.unconfirmedSince <= @before) OR (NOT IS_NULL(c.erasing) AND c.erasing.since <= @before))",
      parameters: [{ name: "@before", value: before.toISOString() }],
    }).then((rows) =>
      rows.map((r) => ({ tenantId: r.tenantId, id: r.id, since: [r.unconfirmedSince, r.erasing?.since].filter((x): x is string => !!x).sort()[0]! })),
    );
  }

  /** Up to `limit` of the tenant's subjects whose data key is wrapped with another KEK version than `version`. */
  subjectsWithOtherKekVersion(tenantId: string, version: string, limit: number): Promise<StoredSubject[]> {
    return this.queryAll(storedSubjectSchema, {
      query: `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'consent-subject' AND c.dataKey.kekVersion != @version`,
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@version", value: version },
      ],
    }, tenantId);
  }

  // --- events ---------------------------------------------------------------------------------------------------

  /** Creates an event; false when one with this id exists already (a retried withdrawal through the same link). */
  createEvent(doc: EventDoc): Promise<boolean> {
    return conditional(() => this.container.items.create(eventDocSchema.parse(doc)));
  }

  getEvent(tenantId: string, eventId: string): Promise<(EventDoc & StoredMeta) | undefined> {
    return readItem(this.container, eventDocSchema, eventId, tenantId);
  }

  /** Records the audit entry of an event (the one change an event ever gets). */
  async setEventAudit(tenantId: string, eventId: string, audit: { seq: number; hash: string }): Promise<void> {
    await this.container.item(eventId, tenantId).patch([{ op: "set", path: "/audit", value: audit }]);
  }

  /** Removes an event; false when it was gone already. For events the log never recorded, and for erasure. */
  async deleteEvent(tenantId: string, eventId: string): Promise<boolean> {
    try {
      await this.container.item(eventId, tenantId).delete();
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Every event of a subject (optionally of one purpose), audited or not, every page (a history keeps at most
   * MAX_HISTORY_EVENTS: shared/domain/consent.ts). A cap here would leave some out, in no defined order.
   */
  eventsOfSubject(tenantId: string, subjectId: string, purposeKey?: string): Promise<EventDoc[]> {
    const parameters: SqlParameter[] = [
      { name: "@tenantId", value: tenantId },
      { name: "@subject", value: subjectId },
    ];
    let filter = "";
    if (purposeKey !== undefined) {
      filter = " AND c.purposeKey = @purpose";
      parameters.push({ name: "@purpose", value: purposeKey });
    }
    return this.queryAll(eventDocSchema, {
      query: `SELECT * FROM c WHERE c.tenantId = @tenantId AND c.type = 'consent-event' AND c.subjectId = @subject${filter}`,
      parameters,
    }, tenantId);
  }

  /**
   * The tenant's recorded (audited) events that carry a GPC signal, of these subjects (at most 1,000 ids a call):
   * subject, purpose and audit sequence number only, for the GPC conflict of the subjects' other events
   * (shared/domain/consent-signals.ts eventConflictsWithGpc).
   */
  gpcEventsOfSubjects(tenantId: string, subjectIds: readonly string[]): Promise<Array<{ subjectId: string; purposeKey: string; audit: { seq: number } }>> {
    if (subjectIds.length === 0) return Promise.resolve([]);
    return this.queryAll(gpcFactSchema, {
      query:
        "SELECT c.subjectId, c.purposeKey, c.audit FROM c WHERE c.tenantId = @tenantId AND c.type = 'consent-event' AND c.gpc = true " +
        "AND NOT IS_NULL(c.audit) AND ARRAY_CONTAINS(@subjects, c.subjectId)",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@subjects", value: [...new Set(subjectIds)] },
      ],
    }, tenantId);
  }

  /** How many of the tenant's recorded (audited) events of a purpose have this notice version and decision. */
  async countEvents(tenantId: string, purposeKey: string, noticeVersion: number | null, decision: string): Promise<number> {
    const version = noticeVersion === null ? "IS_NULL(c.noticeVersion)" : "c.noticeVersion = @version";
    const [n] = await this.queryAll(z.number().int(), {
      query:
        "SELECT VALUE COUNT(1) FROM c WHERE c.tenantId = @tenantId AND c.type = 'consent-event' AND c.purposeKey = @purpose " +
        `AND ${version} AND c.decision = @decision AND NOT IS_NULL(c.audit)`,
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@purpose", value: purposeKey },
        { name: "@decision", value: decision },
        ...(noticeVersion === null ? [] : [{ name: "@version", value: noticeVersion }]),
      ],
    }, tenantId);
    return n ?? 0;
  }

  /**
   * Across all tenants, for the retention sweep only: events whose audit entry was never recorded on them and that
   * were created at or before `before` (a request that died half-way), oldest first, at most `limit`.
   */
  findUnfinishedEventsAcrossTenants(before: Date, limit: number): Promise<Array<{ tenantId: string; id: string; recordedAt: string }>> {
    return this.crossPartition(z.object({ tenantId: z.string(), id: z.string(), recordedAt: iso }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id, c.recordedAt FROM c WHERE c.type = 'consent-event' AND IS_NULL(c.audit) ` +
        "AND c.recordedAt <= @before ORDER BY c.recordedAt ASC",
      parameters: [{ name: "@before", value: before.toISOString() }],
    });
  }

  // --- evidence clocks ------------------------------------------------------------------------------------------

  getClock(tenantId: string, subjectId: string, purposeKey: string): Promise<StoredClock | undefined> {
    return readItem(this.container, clockDocSchema, clockId(subjectId, purposeKey), tenantId);
  }

  getClockById(tenantId: string, id: string): Promise<StoredClock | undefined> {
    return readItem(this.container, clockDocSchema, id, tenantId);
  }

  /** Creates (etag undefined) or replaces the clock if unchanged since `etag`; false when another writer was first. */
  saveClock(doc: ClockDoc, etag: string | undefined): Promise<boolean> {
    const checked = clockDocSchema.parse(doc);
    return conditional(() =>
      etag === undefined ? this.container.items.create(checked) : this.container.item(doc.id, doc.tenantId).replace(checked, { accessCondition: { type: "IfMatch", condition: etag } }),
    );
  }

  /** Deletes a clock if unchanged since `etag` (a history that never had a recorded event); false otherwise. */
  async deleteClock(tenantId: string, id: string, etag: string): Promise<boolean> {
    try {
      await this.container.item(id, tenantId).delete({ accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err) || isNotFound(err)) return false;
      throw err;
    }
  }

  /** The subject's clocks that are not tombstones (histories that still exist). */
  liveClocksOfSubject(tenantId: string, subjectId: string): Promise<ClockDoc[]> {
    return this.queryAll(clockDocSchema, {
      query:
        "SELECT * FROM c WHERE c.tenantId = @tenantId AND c.type = 'consent-clock' AND c.subjectId = @subject AND (IS_NULL(c.erasure) OR IS_NULL(c.erasure.erasedAt))",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@subject", value: subjectId },
      ],
    }, tenantId);
  }

  /** How many current states (clocks) of a purpose have this latest notice version and decision. Derived, see the module comment. */
  async countCurrent(tenantId: string, purposeKey: string, noticeVersion: number | null, decision: string): Promise<number> {
    const version = noticeVersion === null ? "IS_NULL(c.latest.noticeVersion)" : "c.latest.noticeVersion = @version";
    const [n] = await this.queryAll(z.number().int(), {
      query:
        "SELECT VALUE COUNT(1) FROM c WHERE c.tenantId = @tenantId AND c.type = 'consent-clock' AND c.purposeKey = @purpose " +
        `AND NOT IS_NULL(c.latest) AND ${version} AND c.latest.decision = @decision AND (IS_NULL(c.erasure) OR IS_NULL(c.erasure.erasedAt))`,
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@purpose", value: purposeKey },
        { name: "@decision", value: decision },
        ...(noticeVersion === null ? [] : [{ name: "@version", value: noticeVersion }]),
      ],
    }, tenantId);
    return n ?? 0;
  }

  /**
   * Across all tenants, for the retention sweep only: histories whose evidence period ended at or before `now` and
   * that no worker holds, oldest first, at most `limit`. The worker decides each from the events themselves.
   */
  findDueClocksAcrossTenants(now: Date, limit: number): Promise<Array<{ tenantId: string; id: string; evidenceUntil: string }>> {
    return this.crossPartition(z.object({ tenantId: z.string(), id: z.string(), evidenceUntil: iso }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id, c.evidenceUntil FROM c WHERE c.type = 'consent-clock' AND NOT IS_NULL(c.evidenceUntil) ` +
        "AND c.evidenceUntil <= @now AND (IS_NULL(c.erasure) OR (IS_NULL(c.erasure.erasedAt) AND c.erasure.leaseUntil <= @now)) ORDER BY c.evidenceUntil ASC",
      parameters: [{ name: "@now", value: now.toISOString() }],
    });
  }

  /** Across all tenants, for the retention sweep's receipts only: histories sweep `sweepId` erased. */
  findErasedBySweepAcrossTenants(sweepId: string): Promise<Array<{ tenantId: string; id: string; eventIds: string[] }>> {
    return this.crossPartition(z.object({ tenantId: z.string(), id: z.string(), eventIds: z.array(z.string()) }), {
      query: "SELECT c.tenantId, c.id, c.erasure.eventIds AS eventIds FROM c WHERE c.type = 'consent-clock' AND c.erasure.sweepId = @sweep AND NOT IS_NULL(c.erasure.erasedAt)",
      parameters: [{ name: "@sweep", value: sweepId }],
    });
  }

  // --- settings and link secrets --------------------------------------------------------------------------------

  getSettings(tenantId: string): Promise<(ConsentSettingsDoc & StoredMeta) | undefined> {
    return readItem(this.container, settingsDocSchema, SETTINGS_ID, tenantId);
  }

  /** Creates (etag undefined) or replaces the settings if unchanged since `etag`; false when another writer was first. */
  saveSettings(doc: Omit<ConsentSettingsDoc, "id" | "type">, etag: string | undefined): Promise<boolean> {
    const checked = settingsDocSchema.parse({ ...doc, id: SETTINGS_ID, type: "consent-settings" });
    return conditional(() =>
      etag === undefined ? this.container.items.create(checked) : this.container.item(SETTINGS_ID, doc.tenantId).replace(checked, { accessCondition: { type: "IfMatch", condition: etag } }),
    );
  }

  getLinkSecrets(tenantId: string): Promise<StoredLinkSecrets | undefined> {
    return readItem(this.container, linkSecretsDocSchema, LINK_SECRETS_ID, tenantId);
  }

  /** Creates (etag undefined) or replaces the link secrets if unchanged since `etag`; false when another writer was first. */
  saveLinkSecrets(doc: Omit<LinkSecretsDoc, "id" | "type">, etag: string | undefined): Promise<boolean> {
    const checked = linkSecretsDocSchema.parse({ ...doc, id: LINK_SECRETS_ID, type: "consent-link-secrets" });
    return conditional(() =>
      etag === undefined ? this.container.items.create(checked) : this.container.item(LINK_SECRETS_ID, doc.tenantId).replace(checked, { accessCondition: { type: "IfMatch", condition: etag } }),
    );
  }

  // --- link markers and counters --------------------------------------------------------------------------------

  getLinkUse(tenantId: string, tokenHash: string): Promise<(LinkUseDoc & StoredMeta) | undefined> {
    return readItem(this.container, linkUseDocSchema, `link-use:${tokenHash}`, tenantId);
  }

  /** Claims a link's one use; false when it is claimed or used already. */
  claimLinkUse(doc: Omit<LinkUseDoc, "id" | "type">, tokenHash: string): Promise<boolean> {
    return conditional(() => this.container.items.create(linkUseDocSchema.parse({ ...doc, id: `link-use:${tokenHash}`, type: "consent-link-use" })));
  }

  /** Records the link's use as complete, with the events it made. */
  async completeLinkUse(tenantId: string, tokenHash: string, usedAt: Date, eventIds: string[]): Promise<void> {
    await this.container.item(`link-use:${tokenHash}`, tenantId).patch([
      { op: "set", path: "/usedAt", value: usedAt.toISOString() },
      { op: "set", path: "/eventIds", value: eventIds },
    ]);
  }

  getLinkRate(tenantId: string, tokenHash: string): Promise<(LinkRateDoc & StoredMeta) | undefined> {
    return readItem(this.container, linkRateDocSchema, `link-rate:${tokenHash}`, tenantId);
  }

  /** Creates (etag undefined) or replaces a link's counter if unchanged since `etag`; false when another request was first. */
  saveLinkRate(doc: Omit<LinkRateDoc, "id" | "type">, tokenHash: string, etag: string | undefined): Promise<boolean> {
    const checked = linkRateDocSchema.parse({ ...doc, id: `link-rate:${tokenHash}`, type: "consent-link-rate" });
    return conditional(() =>
      etag === undefined ? this.container.items.create(checked) : this.container.item(checked.id, doc.tenantId).replace(checked, { accessCondition: { type: "IfMatch", condition: etag } }),
    );
  }

  /** Deletes a subject's link markers and counters (when the subject's last history is erased). Returns how many. */
  async deleteLinkRecordsOfSubject(tenantId: string, subjectId: string): Promise<number> {
    const rows = await this.queryAll(z.object({ id: z.string() }), {
      query: "SELECT c.id FROM c WHERE c.tenantId = @tenantId AND (c.type = 'consent-link-use' OR c.type = 'consent-link-rate') AND c.subjectId = @subject",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@subject", value: subjectId },
      ],
    }, tenantId);
    for (const { id } of rows) {
      try {
        await this.container.item(id, tenantId).delete();
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return rows.length;
  }

  // --- evidence files -------------------------------------------------------------------------------------------

  getEvidence(tenantId: string, eventId: string): Promise<StoredEvidence | undefined> {
    return readItem(this.container, evidenceDocSchema, evidenceId(eventId), tenantId);
  }

  /** Creates (etag undefined) or replaces the evidence record if unchanged since `etag`; false when another writer was first. */
  saveEvidence(doc: EvidenceDoc, etag: string | undefined): Promise<boolean> {
    const checked = evidenceDocSchema.parse(doc);
    return conditional(() =>
      etag === undefined ? this.container.items.create(checked) : this.container.item(checked.id, doc.tenantId).replace(checked, { accessCondition: { type: "IfMatch", condition: etag } }),
    );
  }

  /** Deletes the evidence record (if unchanged since `etag`, when given); false when it changed or was gone. */
  async deleteEvidence(tenantId: string, eventId: string, etag?: string): Promise<boolean> {
    try {
      await this.container.item(evidenceId(eventId), tenantId).delete(etag === undefined ? {} : { accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err) || isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Across all tenants, for the retention sweep only: evidence records whose PUT claimed them at or before `before`
   * and never finished (its instance died), oldest first, at most `limit`.
   */
  findStaleEvidenceAcrossTenants(before: Date, limit: number): Promise<Array<{ tenantId: string; id: string; since: string }>> {
    return this.crossPartition(z.object({ tenantId: z.string(), id: z.string(), since: iso }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id, c.receiving.since AS since FROM c WHERE c.type = 'consent-evidence' ` +
        "AND NOT IS_NULL(c.receiving) AND c.receiving.since <= @before ORDER BY c.receiving.since ASC",
      parameters: [{ name: "@before", value: before.toISOString() }],
    });
  }

  // --- exports --------------------------------------------------------------------------------------------------

  /**
   * A page of the tenant's recorded events (those with an audit entry) recorded in [from, to), in the audit log's
   * order (the entry's sequence number), after sequence number `afterSeq`; at most `limit`.
   */
  recordedEventsBetween(tenantId: string, from: Date, to: Date, afterSeq: number, limit: number): Promise<EventDoc[]> {
    return this.queryAll(eventDocSchema, {
      query:
        `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'consent-event' AND NOT IS_NULL(c.audit) ` +
        "AND c.recordedAt >= @from AND c.recordedAt < @to AND c.audit.seq > @after ORDER BY c.audit.seq ASC",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@from", value: from.toISOString() },
        { name: "@to", value: to.toISOString() },
        { name: "@after", value: afterSeq },
      ],
    }, tenantId);
  }

  /** Reachability, for health: reads the container's definition. */
  async probe(): Promise<void> {
    await this.container.read();
  }
}

const gpcFactSchema = z.object({ subjectId: z.string(), purposeKey: z.string(), audit: z.object({ seq: z.number().int() }).passthrough() });

export function evidenceId(eventId: string): string {
  return `evidence:${eventId}`;
}

export function clockId(subjectId: string, purposeKey: string): string {
  return `clock:${subjectId}:${purposeKey}`;
}
