/**
 * Consent records (GDPR Art. 7): the purposes a tenant asks consent for, the notice versions it showed, and the
 * append-only events of what each person decided, with the current state a projection of those events
 * (shared/domain/consent.ts). Proof documents: consent-proof.ts; withdrawal links: consent-links.ts; retention:
 * consent-retention.ts.
 *
 * Recording an event, in order (each step safe to repeat, a crash at any point finished or undone by the retention
 * sweep's catch-up):
 * 1. the subject is found by the keyed hash of the normalised e-mail, or created with a fresh data key (and marked
 *    unconfirmed until its first event is recorded);
 * 2. the event is created: non-personal fields in clear (the IP only truncated), personal ones encrypted with the
 *    subject's data key, and its keyed digest;
 * 3. the subject is read again: if it is being removed, the removal is cancelled; if it is gone, the event goes and
 *    the recording starts again (so no event is left encrypted under a destroyed key); it lists the event's purpose;
 * 4. the event joins the list of its history (subject and purpose) kept in the clock document, from which the
 *    evidence clock is recomputed (optimistic concurrency; no query: the list is the history's index);
 * 5. the audit entry `consent.recorded` (once per event: a fresh event id is the recording's own, a fixed one is
 *    appended once per id) carries the digest; an event whose entry the log does not show after a failed append is
 *    removed (one whose entry is there all the same, its answer lost, is recorded; one whose log cannot be read is
 *    left unrecorded for the retention repair), so no event exists that the log does not show and no entry names an
 *    event that is gone; the entry's position is noted on the event.
 */
import { createHash } from "node:crypto";
import { lookupHash, normaliseEmail } from "../crypto";
import {
  ALL_PURPOSES,
  checkConsent,
  consentDigest,
  DIGEST_SCHEME_V2,
  decisionOrder,
  eventDigestKey,
  evidenceClock,
  givenAtProblem,
  newConsentEventId,
  newConsentSubjectId,
  embeddedIpv4,
  parseIp,
  projectStates,
  DECISIONS,
  historyHasRoom,
  type ConsentCheck,
  type Decision,
  type DecisionFact,
  type DigestContent,
  type DigestContentV2,
  type LegalBasis,
  type Method,
  type RequestOrigin,
} from "../domain/consent";
import {
  countryCodeProblem,
  decodeGppString,
  decodeTcString,
  eventConflictsWithGpc,
  firstGpcSeqs,
  stateConflictsWithGpc,
  type FirstGpcSeqs,
  type EventLocation,
  type GppHeader,
  type TcfHeader,
} from "../domain/consent-signals";
import { AppError } from "../errors";
import type { Services } from "../services";
import { clockId, type ClockDoc, type ClockFact, type EventDoc, type NoticeDoc, type PurposeDoc, type StoredClock, type StoredSubject, type SubjectDoc } from "../stores/consent-store";
import { withoutMeta } from "../stores/cosmos";
import { entryAfterFailedAppend, recordAudit, recordAuditOnceAt, type Actor, type TenantCaller } from "./audit-trail";
import { newSubjectKey, openConsentField, sealConsentField, unwrapSubjectKey } from "./consent-keys";

/** At most this many purposes per tenant (a withdrawal of `all` records one event per purpose). */
export const MAX_PURPOSES = 200;
/** How many subjects' states an upload's consent check reads at once. */
const REQUIRE_CONSENT_CONCURRENCY = 16;

// --- views ---------------------------------------------------------------------------------------------------------

export interface NoticeView {
  version: number;
  language: string;
  text: string | null;
  url: string | null;
  sha256: string;
  createdAt: string;
}

export interface PurposeView {
  key: string;
  description: string;
  legalBasis: LegalBasis;
  createdAt: string;
  notices: NoticeView[];
}

/** An event as the API shows it: nothing personal (the IP truncated; user agent and page URL only in a proof). */
export interface ConsentEventView {
  id: string;
  subjectId: string;
  purpose: string;
  noticeVersion: number | null;
  decision: Decision;
  method: Method;
  requestOrigin: RequestOrigin;
  propertyId: string | null;
  language: string | null;
  givenAt: string;
  recordedAt: string;
  ipAddress: string | null;
  /** The country of the IP address: given by the tenant, or derived offline when recorded (with the database). */
  country: EventLocation | null;
  gpc: boolean | null;
  /** A grant with a GPC signal on it or on an earlier recorded event of the same subject and purpose. */
  conflictsWithGpc: boolean;
  /** What the IAB strings' headers say (the strings themselves are kept encrypted; a proof shows them). */
  tcf: TcfHeader | null;
  gpp: GppHeader | null;
  recordedBy: string;
  linkId: string | null;
  digest: string;
  digestScheme: string;
  audit: { seq: number; hash: string };
}

export interface PurposeStateView {
  purpose: string;
  decision: Decision;
  since: string;
  eventId: string;
  noticeVersion: number | null;
  events: number;
  /** The latest decision is a grant, and a GPC signal was seen in the purpose's history. */
  conflictsWithGpc: boolean;
}

const noticeView = (n: NoticeDoc): NoticeView => ({ version: n.version, language: n.language, text: n.text, url: n.url, sha256: n.sha256, createdAt: n.createdAt });

/**
 * The API's view of a recorded event. `firstGpc` holds the first GPC signal per subject and purpose (firstGpcSeqs)
 * over at least the events recorded before this one of its subject and purpose (gpcHistoryOf reads them).
 */
export function eventView(e: EventDoc & { audit: NonNullable<EventDoc["audit"]> }, firstGpc: FirstGpcSeqs): ConsentEventView {
  return {
    id: e.id,
    subjectId: e.subjectId,
    purpose: e.purposeKey,
    noticeVersion: e.noticeVersion,
    decision: e.decision,
    method: e.method,
    requestOrigin: e.requestOrigin,
    propertyId: e.propertyId,
    language: e.language,
    givenAt: e.givenAt,
    recordedAt: e.recordedAt,
    ipAddress: e.ipTruncated,
    country: e.location,
    gpc: e.gpc,
    conflictsWithGpc: eventConflictsWithGpc(e, firstGpc),
    tcf: e.signals.tcf?.header ?? null,
    gpp: e.signals.gpp?.header ?? null,
    recordedBy: e.actor,
    linkId: e.linkId,
    digest: e.digest,
    digestScheme: e.digestScheme,
    audit: e.audit,
  };
}

/**
 * What eventConflictsWithGpc needs for these events: the first GPC signal of each of their subjects' purposes, read
 * from storage only for grants that carry no signal themselves (the only events whose flag depends on others).
 */
export async function gpcHistoryOf(s: Services, tenantId: string, events: readonly EventDoc[]): Promise<FirstGpcSeqs> {
  const subjects = [...new Set(events.filter((e) => e.decision === "granted" && e.gpc !== true).map((e) => e.subjectId))];
  const found: Array<{ subjectId: string; purposeKey: string; gpc: true; audit: { seq: number } }> = [];
  for (let i = 0; i < subjects.length; i += 1000) {
    for (const f of await s.consents.gpcEventsOfSubjects(tenantId, subjects.slice(i, i + 1000))) found.push({ ...f, gpc: true });
  }
  return firstGpcSeqs(found);
}

/** The current state per purpose, each with its GPC conflict (shared/domain/consent-signals.ts). */
export function stateViews(events: readonly EventDoc[]): PurposeStateView[] {
  return projectStates(events.map(factOf)).map((st) => ({
    purpose: st.purposeKey,
    decision: st.decision,
    since: st.since,
    eventId: st.eventId,
    noticeVersion: st.noticeVersion,
    events: st.events,
    conflictsWithGpc: stateConflictsWithGpc(st.decision, events.filter((e) => e.purposeKey === st.purposeKey)),
  }));
}

/** The IAB strings of an event as sent, decrypted with the subject's data key (null where none was sent). */
export function openSignals(dataKey: Buffer, e: EventDoc): { tcf: string | null; gpp: string | null } {
  return {
    tcf: e.signals.tcf ? openConsentField(dataKey, e.tenantId, e.id, "tcfString", e.signals.tcf.sealed) : null,
    gpp: e.signals.gpp ? openConsentField(dataKey, e.tenantId, e.id, "gppString", e.signals.gpp.sealed) : null,
  };
}

const sha256Hex = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

/**
 * The content an event's digest covers, from the stored event (and, for v2, its IAB strings as sent: their hashes
 * are covered, the strings are kept encrypted). v1 events were recorded before locations and IAB strings were kept.
 */
export function digestContentOf(e: EventDoc, signals: { tcf: string | null; gpp: string | null }): DigestContent {
  const v1 = {
    tenantId: e.tenantId,
    eventId: e.id,
    subjectId: e.subjectId,
    subjectHash: e.subjectHash,
    purposeKey: e.purposeKey,
    noticeVersion: e.noticeVersion,
    noticeSha256: e.noticeSha256,
    decision: e.decision,
    method: e.method,
    requestOrigin: e.requestOrigin,
    propertyId: e.propertyId,
    language: e.language,
    givenAt: e.givenAt,
    recordedAt: e.recordedAt,
    ipTruncated: e.ipTruncated,
    gpc: e.gpc,
  };
  if (e.digestScheme !== DIGEST_SCHEME_V2) return { scheme: "safedata.consent-digest.v1", ...v1 };
  const v2: DigestContentV2 = {
    scheme: DIGEST_SCHEME_V2,
    ...v1,
    location: e.location,
    tcf: e.signals.tcf && signals.tcf !== null ? { sha256: sha256Hex(signals.tcf), header: e.signals.tcf.header } : null,
    gpp: e.signals.gpp && signals.gpp !== null ? { sha256: sha256Hex(signals.gpp), header: e.signals.gpp.header } : null,
  };
  return v2;
}

/** Events that are part of the record: those whose audit entry is written. */
export function recorded(events: readonly EventDoc[]): Array<EventDoc & { audit: NonNullable<EventDoc["audit"]> }> {
  return events.filter((e): e is EventDoc & { audit: NonNullable<EventDoc["audit"]> } => e.audit !== null);
}

export const factOf = (e: EventDoc): DecisionFact => ({
  id: e.id,
  purposeKey: e.purposeKey,
  decision: e.decision,
  givenAt: e.givenAt,
  recordedAt: e.recordedAt,
  noticeVersion: e.noticeVersion,
  seq: e.audit?.seq ?? null,
});

const unknownPurpose = (path = "purpose") => new AppError("validation-failed", `${path} names no purpose of this tenant`, { errors: [{ path, message: "no purpose with this key" }] });

// --- purposes and notices ------------------------------------------------------------------------------------------

/** Creates a purpose. Errors: conflict (the key exists, or the tenant has MAX_PURPOSES). */
export async function createPurpose(s: Services, caller: TenantCaller, input: { key: string; description: string; legalBasis: LegalBasis }): Promise<PurposeView> {
  const { tenantId } = caller;
  if ((await s.consents.listPurposes(tenantId, MAX_PURPOSES)).length >= MAX_PURPOSES) {
    throw new AppError("conflict", `a tenant may have at most ${MAX_PURPOSES} purposes`);
  }
  const now = s.clock.now().toISOString();
  const doc: PurposeDoc = {
    id: `purpose:${input.key}`,
    tenantId,
    type: "consent-purpose",
    key: input.key,
    description: input.description,
    legalBasis: input.legalBasis,
    createdAt: now,
    createdBy: caller.actor,
    lastNoticeVersion: 0,
  };
  if (!(await s.consents.createPurpose(doc))) throw new AppError("conflict", `a purpose with the key '${input.key}' exists already; purposes are never changed`);
  await recordAudit(s, tenantId, caller, "consent.purpose-created", { type: "consent-purpose", id: input.key }, { legalBasis: input.legalBasis });
  return { key: doc.key, description: doc.description, legalBasis: doc.legalBasis, createdAt: doc.createdAt, notices: [] };
}

async function mustGetPurpose(s: Services, tenantId: string, key: string): Promise<PurposeDoc> {
  const doc = await s.consents.getPurpose(tenantId, key);
  // Another tenant's purpose is not found either: every read names the caller's tenant.
  if (!doc) throw new AppError("not-found", "no purpose with this key");
  return doc;
}

/** One purpose with its notice versions, oldest first. Errors: not-found. */
export async function getPurpose(s: Services, caller: TenantCaller, key: string): Promise<PurposeView> {
  const doc = await mustGetPurpose(s, caller.tenantId, key);
  const notices = await s.consents.listNotices(caller.tenantId, key);
  return { key: doc.key, description: doc.description, legalBasis: doc.legalBasis, createdAt: doc.createdAt, notices: notices.map(noticeView) };
}

/** The tenant's purposes, by key (without their notices). */
export async function listPurposes(s: Services, caller: TenantCaller): Promise<{ items: Array<Omit<PurposeView, "notices"> & { lastNoticeVersion: number }> }> {
  const docs = await s.consents.listPurposes(caller.tenantId, MAX_PURPOSES);
  return { items: docs.map((d) => ({ key: d.key, description: d.description, legalBasis: d.legalBasis, createdAt: d.createdAt, lastNoticeVersion: d.lastNoticeVersion })) };
}

export type NoticeInput = { language: string; text: string } | { language: string; url: string; sha256: string };

/**
 * Adds a notice version to a purpose: the next number, never given twice (a version lost to a crash leaves a gap),
 * never edited. With the text, its SHA-256 is computed; with a URL, the SHA-256 of the rendered text is as given.
 * Errors: not-found (the purpose), conflict (raced too often).
 */
export async function addNotice(s: Services, caller: TenantCaller, key: string, input: NoticeInput): Promise<NoticeView> {
  const { tenantId } = caller;
  for (let attempt = 0; attempt < 10; attempt++) {
    const purpose = await s.consents.getPurpose(tenantId, key);
    if (!purpose) throw new AppError("not-found", "no purpose with this key");
    const version = purpose.lastNoticeVersion + 1;
    // The number is claimed first, so two requests never get the same one.
    if (!(await s.consents.replacePurpose({ ...withoutMeta(purpose), lastNoticeVersion: version }, purpose._etag))) continue;
    const doc: NoticeDoc = {
      id: `notice:${key}:${version}`,
      tenantId,
      type: "consent-notice",
      purposeKey: key,
      version,
      language: input.language,
      text: "text" in input ? input.text : null,
      url: "url" in input ? input.url : null,
      sha256: "text" in input ? createHash("sha256").update(input.text, "utf8").digest("hex") : input.sha256.toLowerCase(),
      createdAt: s.clock.now().toISOString(),
      createdBy: caller.actor,
    };
    if (!(await s.consents.createNotice(doc))) continue;
    await recordAudit(s, tenantId, caller, "consent.notice-added", { type: "consent-purpose", id: key }, { version, sha256: doc.sha256, language: doc.language, byUrl: doc.url !== null });
    return noticeView(doc);
  }
  throw new AppError("conflict", "the purpose is being changed by other requests; retry");
}

// --- settings ------------------------------------------------------------------------------------------------------

export interface ConsentSettingsView {
  storeFullIp: boolean;
  updatedAt: string | null;
}

export async function getConsentSettings(s: Services, caller: TenantCaller): Promise<ConsentSettingsView> {
  const doc = await s.consents.getSettings(caller.tenantId);
  return { storeFullIp: doc?.storeFullIp ?? false, updatedAt: doc?.updatedAt ?? null };
}

/**
 * Whether the full IP address of new events is kept (encrypted with the subject's key) beside the truncated one.
 * Off unless the tenant opts in. Audited. Errors: conflict (raced too often).
 */
export async function setConsentSettings(s: Services, caller: TenantCaller, input: { storeFullIp: boolean }): Promise<ConsentSettingsView> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await s.consents.getSettings(caller.tenantId);
    const updatedAt = s.clock.now().toISOString();
    if (await s.consents.saveSettings({ tenantId: caller.tenantId, storeFullIp: input.storeFullIp, updatedAt, updatedBy: caller.actor }, current?._etag)) {
      await recordAudit(s, caller.tenantId, caller, "consent.settings-updated", { type: "tenant", id: caller.tenantId }, {
        storeFullIp: input.storeFullIp,
        previous: current?.storeFullIp ?? false,
      });
      return { storeFullIp: input.storeFullIp, updatedAt };
    }
  }
  throw new AppError("conflict", "the settings are being changed by another request; retry");
}

// --- subjects --------------------------------------------------------------------------------------------------------

/** A subject as a recording needs it: its document and its data key. */
export interface SubjectContext {
  subject: SubjectDoc;
  dataKey: Buffer;
  lookupSecret: Buffer;
}

/** The keyed hash a subject is found by: HMAC-SHA256 of the normalised address under the tenant's lookup secret. */
export async function subjectLookup(s: Services, tenantId: string, email: string): Promise<{ lookup: string; lookupSecret: Buffer }> {
  const lookupSecret = await s.keys.lookupSecret(tenantId);
  return { lookup: lookupHash(lookupSecret, normaliseEmail(email)), lookupSecret };
}

/** The subject with this address, if the tenant has recorded consent for it. */
export async function findSubject(s: Services, tenantId: string, email: string): Promise<StoredSubject | undefined> {
  const { lookup } = await subjectLookup(s, tenantId, email);
  return s.consents.getSubjectByLookup(tenantId, lookup);
}

/**
 * The subject with this address, created (with its own data key, wrapped by the caller's KEK version) when the tenant
 * has none yet. A subject being removed by the retention sweep is kept: the removal is cancelled.
 */
async function subjectFor(s: Services, tenantId: string, email: string, kekVersion: string, purposes: readonly string[]): Promise<SubjectContext> {
  const { lookup, lookupSecret } = await subjectLookup(s, tenantId, email);
  for (let attempt = 0; attempt < 5; attempt++) {
    const found = await s.consents.getSubjectByLookup(tenantId, lookup);
    if (found) {
      if (found.erasing && !(await s.consents.replaceSubject({ ...withoutMeta(found), erasing: null }, found._etag))) continue;
      return { subject: { ...withoutMeta(found), erasing: null }, dataKey: await unwrapSubjectKey(s, found), lookupSecret };
    }
    const subjectId = newConsentSubjectId();
    const { dataKey, wrapped } = await newSubjectKey(s, tenantId, subjectId, kekVersion);
    const now = s.clock.now().toISOString();
    const doc: SubjectDoc = {
      id: `subject:${lookup}`,
      tenantId,
      type: "consent-subject",
      subjectId,
      lookup,
      dataKey: wrapped,
      email: sealConsentField(dataKey, tenantId, subjectId, "email", normaliseEmail(email)),
      createdAt: now,
      unconfirmedSince: now,
      erasing: null,
      // The purposes it is created for: their events are audited after this, so it lists them before (appendEvent).
      purposes: [...new Set(purposes)].sort(),
    };
    if (await s.consents.createSubject(doc)) return { subject: doc, dataKey, lookupSecret };
  }
  throw new AppError("conflict", "the data subject's record is being changed by other requests; retry");
}

// --- recording events ------------------------------------------------------------------------------------------------

/** One decision as it is to be recorded (validated: purpose and notice exist, IP parses, givenAt allowed). */
export interface EventFacts {
  purposeKey: string;
  noticeVersion: number | null;
  noticeSha256: string | null;
  decision: Decision;
  method: Method;
  requestOrigin: RequestOrigin;
  propertyId: string | null;
  language: string | null;
  givenAt: string;
  ipAddress: string | null;
  userAgent: string | null;
  pageUrl: string | null;
  gpc: boolean | null;
  /** The country: as the tenant gave it (checked), or derived from the IP address offline; null: neither. */
  location: EventLocation | null;
  /** IAB strings as sent, with their decoded headers (checked). */
  tcf: { text: string; header: TcfHeader } | null;
  gpp: { text: string; header: GppHeader } | null;
}

/** Who records an event, and through which link, if any. */
export interface Recorder extends Actor {
  readonly linkId: string | null;
}

/** Thrown inside a recording whose subject was removed between its steps: the recording starts again. */
class SubjectGone extends Error {}

/**
 * A history that holds the most events it keeps for this decision (see historyHasRoom). `latest`: its decision in
 * force (the latest by decision order, as the state shows it: not the last recorded, which may be backdated).
 */
class HistoryFull extends AppError {
  constructor(
    readonly listed: number,
    readonly latest: { eventId: string; decision: Decision } | undefined,
    decision: Decision,
  ) {
    super(
      "conflict",
      decision === "granted"
        ? `this data subject's history for the purpose holds ${listed} events, the most it keeps before a new grant; a withdrawal or denial is still recorded`
        : `this data subject's history for the purpose holds ${listed} events, the most it keeps`,
    );
  }
}

/** What a history's clock keeps of one of its events. */
export const clockFactOf = (e: EventDoc): ClockFact => ({
  id: e.id,
  decision: e.decision,
  givenAt: e.givenAt,
  recordedAt: e.recordedAt,
  noticeVersion: e.noticeVersion,
  gpc: e.gpc,
  seq: e.audit?.seq ?? null,
});

/**
 * A clock's facts as the decision rules take them. The list is in the order of recording (each recording appends its
 * event before writing its entry; a list read again from the events is put in their entries' order), so a fact's
 * position stands for its audit position, which the list may not know yet: decisions at the same instant are ordered
 * as recorded, as the events' own order does.
 */
export const decisionFactsOf = (purposeKey: string, facts: readonly ClockFact[]): DecisionFact[] =>
  facts.map((f, i) => ({ id: f.id, purposeKey, decision: f.decision, givenAt: f.givenAt, recordedAt: f.recordedAt, noticeVersion: f.noticeVersion, seq: i + 1 }));

/** Events as a clock lists them: in the order of their audit entries, the unaudited last (oldest recorded first). */
export const listOf = (events: readonly EventDoc[]): ClockFact[] =>
  [...events].sort((a, b) => (a.audit?.seq ?? Infinity) - (b.audit?.seq ?? Infinity) || a.recordedAt.localeCompare(b.recordedAt) || a.id.localeCompare(b.id)).map(clockFactOf);

/** A clock's facts as the GPC rules take them (shared/domain/consent-signals.ts): a fact without its seq precedes nothing. */
export const gpcFactsOf = (subjectId: string, purposeKey: string, facts: readonly ClockFact[]) =>
  facts.map((f) => ({ subjectId, purposeKey, gpc: f.gpc, audit: f.seq === null ? null : { seq: f.seq } }));

/**
 * A change to one history's list of events (the clock's `facts`): a recording lists its event (`add`), a path that
 * deletes events takes them out (`remove`), and `rebuild` reads the list again from the events themselves (one
 * query: for the retention repair of a crashed recording, which may have left an event the list lacks).
 */
export type ClockChange = { add: EventDoc } | { remove: readonly string[] } | { rebuild: true };

/** The clock of `facts`: the latest decision and when the evidence falls due, computed from them. */
export function clockOf(s: Services, tenantId: string, subjectId: string, purposeKey: string, facts: ClockFact[], erasure: ClockDoc["erasure"]): ClockDoc {
  const decisions = decisionFactsOf(purposeKey, facts);
  const latest = projectStates(decisions)[0];
  const now = s.clock.now().toISOString();
  return {
    id: clockId(subjectId, purposeKey),
    tenantId,
    type: "consent-clock",
    subjectId,
    purposeKey,
    latest: latest ? { decision: latest.decision, noticeVersion: latest.noticeVersion } : null,
    events: facts.length,
    facts,
    // A history with no events left is due at once (the sweep then removes what is left of it).
    evidenceUntil: facts.length === 0 ? now : evidenceClock(decisions, s.settings.consentEvidenceYears).evidenceUntil,
    computedAt: now,
    // An erasure under way keeps its lease (its worker re-checks the events); a tombstone becomes a live history again.
    erasure: erasure && erasure.erasedAt === null ? erasure : null,
  };
}

/**
 * The audit positions of GPC facts that lack one (the fact was listed before its event's entry was written), read from
 * their events, so the GPC history of the next event is known without a query; a listed event that is gone (deleted
 * by a path that takes it out of the list next) is dropped. Other facts are left as they are: their position is only
 * a tie-break of the decision order.
 */
async function withGpcPositions(s: Services, tenantId: string, facts: ClockFact[], except: string): Promise<ClockFact[]> {
  const unknown = facts.filter((f) => f.gpc === true && f.seq === null && f.id !== except);
  if (unknown.length === 0) return facts;
  const found = new Map((await Promise.all(unknown.map((f) => s.consents.getEvent(tenantId, f.id)))).filter((e) => e !== undefined).map((e) => [e.id, e]));
  return facts.flatMap((f) => {
    if (!unknown.includes(f)) return [f];
    const e = found.get(f.id);
    return e ? [{ ...f, seq: e.audit?.seq ?? null }] : [];
  });
}

/**
 * Changes the list of events of one subject and purpose in its clock, and recomputes from it the latest decision and
 * when the evidence falls due. Reads the clock and writes it conditionally (etag), so concurrent changes each apply
 * once. The list holds every event, audited or not (a missing entry only delays an erasure, never hastens it). A
 * clock stored before the list was kept is filled by one query of the events first. `likelyAbsent`: the subject is
 * new (saves the read of a clock that is not there). Returns the list as written.
 * Errors: conflict (raced 20 times).
 */
export async function refreshClock(
  s: Services,
  tenantId: string,
  subjectId: string,
  purposeKey: string,
  change: ClockChange = { rebuild: true },
  opts: { likelyAbsent?: boolean } = {},
): Promise<ClockFact[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    // A subject created by this request has no clock yet: the first attempt creates it unread (a create that finds
    // one, left by a crashed recording, fails and the next attempt reads it).
    const clock = attempt === 0 && opts.likelyAbsent && "add" in change ? undefined : await s.consents.getClock(tenantId, subjectId, purposeKey);
    const stored = "rebuild" in change ? undefined : clock ? clock.facts : [];
    let facts = stored ?? listOf(await s.consents.eventsOfSubject(tenantId, subjectId, purposeKey));
    if ("add" in change) {
      const others = facts.filter((f) => f.id !== change.add.id);
      if (!historyHasRoom(others.length, change.add.decision)) throw new HistoryFull(others.length, projectStates(decisionFactsOf(purposeKey, others))[0], change.add.decision);
      facts = await withGpcPositions(s, tenantId, [...others, clockFactOf(change.add)], change.add.id);
    }
    if ("remove" in change) {
      const gone = new Set(change.remove);
      facts = facts.filter((f) => !gone.has(f.id));
      if (stored !== undefined && facts.length === stored.length) return facts;
    }
    if (facts.length === 0 && (!clock || clock.erasure?.erasedAt)) return facts;
    if (await s.consents.saveClock(clockOf(s, tenantId, subjectId, purposeKey, facts, clock?.erasure ?? null), clock?._etag)) return facts;
  }
  throw new AppError("conflict", "the consent history is being changed by other requests; retry");
}

/**
 * Appends one event for a subject (the module comment's steps 2-5). `eventId` fixes the id (a withdrawal link's
 * events, so a retried use writes each once); otherwise a new one. Returns the recorded event.
 */
/**
 * A recorded event, with the first GPC signal of its subject's purpose among the events recorded before it (read with
 * its evidence clock: eventConflictsWithGpc needs nothing more for it).
 */
export type RecordedEvent = EventDoc & { audit: NonNullable<EventDoc["audit"]>; firstGpc: FirstGpcSeqs };

async function appendEvent(s: Services, tenantId: string, ctx: SubjectContext, facts: EventFacts, by: Recorder, eventId: string, fixedId: boolean): Promise<RecordedEvent> {
  const { subject, dataKey } = ctx;
  const now = s.clock.now().toISOString();
  const storeFullIp = (await s.consents.getSettings(tenantId))?.storeFullIp ?? false;
  const ip = facts.ipAddress !== null ? parseIp(facts.ipAddress) : undefined;
  const seal = (field: "ipAddress" | "userAgent" | "pageUrl" | "tcfString" | "gppString", value: string | null | undefined) =>
    value === null || value === undefined ? null : sealConsentField(dataKey, tenantId, eventId, field, value);
  const unsigned: EventDoc = {
    id: eventId,
    tenantId,
    type: "consent-event",
    subjectId: subject.subjectId,
    subjectHash: subject.lookup,
    purposeKey: facts.purposeKey,
    noticeVersion: facts.noticeVersion,
    noticeSha256: facts.noticeSha256,
    decision: facts.decision,
    method: facts.method,
    requestOrigin: facts.requestOrigin,
    propertyId: facts.propertyId,
    language: facts.language,
    givenAt: facts.givenAt,
    recordedAt: now,
    ipTruncated: ip?.truncated ?? null,
    gpc: facts.gpc,
    personal: { ipAddress: storeFullIp ? seal("ipAddress", ip?.full) : null, userAgent: seal("userAgent", facts.userAgent), pageUrl: seal("pageUrl", facts.pageUrl) },
    location: facts.location,
    signals: {
      tcf: facts.tcf ? { sealed: seal("tcfString", facts.tcf.text)!, header: facts.tcf.header } : null,
      gpp: facts.gpp ? { sealed: seal("gppString", facts.gpp.text)!, header: facts.gpp.header } : null,
    },
    digestScheme: DIGEST_SCHEME_V2,
    actor: by.actor,
    requestId: by.requestId ?? null,
    linkId: by.linkId,
    digest: "",
    audit: null,
  };
  const content = digestContentOf(unsigned, { tcf: facts.tcf?.text ?? null, gpp: facts.gpp?.text ?? null });
  const fresh: EventDoc = { ...unsigned, digest: consentDigest(eventDigestKey(ctx.lookupSecret, tenantId, eventId), content) };
  const created = await s.consents.createEvent(fresh);
  // A fixed id that exists already: an earlier attempt of the same withdrawal, which this one finishes.
  const event = created ? fresh : await s.consents.getEvent(tenantId, eventId);
  if (!event || event.subjectId !== subject.subjectId) throw new AppError("conflict", "the event is being recorded by another request; retry");
  if (event.audit) {
    try {
      const listed = await refreshClock(s, tenantId, subject.subjectId, facts.purposeKey, { add: event });
      return { ...event, audit: event.audit, firstGpc: firstGpcSeqs(gpcFactsOf(subject.subjectId, facts.purposeKey, listed)) };
    } catch (err) {
      // Recorded already (audited) by an earlier attempt, its history full since: it is the answer all the same (a
      // history that full is read by query, which finds it unlisted).
      if (err instanceof HistoryFull && facts.decision !== "granted" && err.latest && err.latest.decision !== "granted") return { ...event, audit: event.audit, firstGpc: new Map<string, number>() };
      throw err;
    }
  }

  // The subject must still exist, and not be on its way out (see consent-retention.ts, the subject's removal).
  const kept = await keepSubject(s, tenantId, subject, facts.purposeKey);
  if (!kept) {
    await s.consents.deleteEvent(tenantId, eventId);
    throw new SubjectGone();
  }

  // The event joins its history's list before its entry is written, so every audited event is listed. The GPC history
  // of this event's 201 answer: the other listed events whose entry is known (this one's comes later). One whose
  // entry a concurrent request writes between this read and this event's entry is missed by the 201 only; every
  // later reading (event, search, proof, export) computes from the audit order and sees it.
  let listed: ClockFact[];
  try {
    listed = await refreshClock(s, tenantId, subject.subjectId, facts.purposeKey, { add: event }, { likelyAbsent: subject.unconfirmedSince !== null });
  } catch (err) {
    // Not listed and not audited: this attempt's event goes (a retried link keeps its own for the next try).
    if (created) await s.consents.deleteEvent(tenantId, eventId).catch(() => false);
    // A withdrawal or denial for a history full to its bound whose decision in force is already no consent: that
    // decision's event is the answer (Art. 7(3)). One being recorded right now (not yet audited): retry. One in force
    // that is a grant (only backdated decisions make that possible past MAX_HISTORY_GRANTS): the 409 stands.
    if (err instanceof HistoryFull && facts.decision !== "granted" && err.latest && err.latest.decision !== "granted") {
      const latest = await s.consents.getEvent(tenantId, err.latest.eventId);
      if (latest?.audit) return { ...latest, audit: latest.audit, firstGpc: new Map<string, number>() };
      throw new AppError("conflict", "another decision for this data subject's purpose is being recorded; retry");
    }
    throw err;
  }
  const before = gpcFactsOf(subject.subjectId, facts.purposeKey, listed.filter((f) => f.id !== eventId));
  let position: { seq: number; hash: string | undefined } | undefined;
  try {
    const target = { type: "consent-event", id: eventId } as const;
    const details = {
      subjectId: subject.subjectId,
      purposeKey: facts.purposeKey,
      noticeVersion: facts.noticeVersion,
      decision: facts.decision,
      method: facts.method,
      digest: event.digest,
      digestScheme: event.digestScheme,
      ...(by.linkId ? { linkId: by.linkId } : {}),
    };
    // A fresh random id is this call's own: nothing else ever appends its entry (a retried request makes a new event;
    // the retention repair of a crashed one only looks the entry up), so a plain append. A fixed id (a withdrawal
    // link's, whose retries and takeovers finish the same event) is appended once per id.
    position = fixedId
      ? await recordAuditOnceAt(s, tenantId, by, "consent.recorded", target, details, `consent.recorded:${tenantId}:${eventId}`)
      : await recordAudit(s, tenantId, by, "consent.recorded", target, details);
  } catch (err) {
    // No event the log does not show: this attempt's event goes (a retried link keeps its own for the next try).
    // It leaves its history's list first: if that fails, the event stays, unaudited, for the retention repair to
    // settle (it reads the list again from the events), so the list never names an event that is gone for good.
    // An entry stored all the same (its answer lost) means the event is recorded: it is the answer. Unknown (the log
    // cannot be read): the event stays for the repair, which looks for its entry again.
    const stored = await entryAfterFailedAppend(s, tenantId, "consent.recorded", eventId);
    if (typeof stored === "object") {
      position = { seq: stored.seq, hash: undefined };
    } else {
      if (stored === "absent" && created && (await refreshClock(s, tenantId, subject.subjectId, facts.purposeKey, { remove: [eventId] }).then(() => true, () => false))) {
        await s.consents.deleteEvent(tenantId, eventId).catch(() => false);
      }
      throw err;
    }
  }
  if (position === undefined) throw new AppError("conflict", "the event is being recorded by another request; retry");
  const seq = position.seq;
  const hash = position.hash ?? (await s.audit.entryHash(tenantId, seq));
  if (!hash) throw new Error(`audit entry ${seq} of tenant ${tenantId} is missing right after it was written`);
  // The entry is written: the event is recorded. Its position is set with a few tries (a lost answer is retried; a
  // write that still fails is settled by the retention repair, which finds the entry by its target).
  for (let attempt = 0; ; attempt++) {
    try {
      await s.consents.setEventAudit(tenantId, eventId, { seq, hash });
      break;
    } catch (err) {
      if (attempt >= 2) throw err;
    }
  }
  if (subject.unconfirmedSince) {
    // Best effort: a subject left unconfirmed is settled by the retention sweep, which finds its events. The subject
    // as read before the entry is tried first; changed since, it is read again.
    const confirm = async (stored: StoredSubject | undefined) =>
      !stored?.unconfirmedSince || (await s.consents.replaceSubject({ ...withoutMeta(stored), unconfirmedSince: null }, stored._etag));
    if (!(kept.stored && (await confirm(kept.stored)))) await confirm(await s.consents.getSubjectDoc(tenantId, subject.id));
  }
  return { ...event, audit: { seq, hash }, firstGpc: firstGpcSeqs(before) };
}

/**
 * Reads the subject again before its event is listed and audited: undefined when it is gone (or is another subject
 * now); otherwise the subject as read, unless this call changed it.
 * A removal under way is cancelled (the mark cleared, which makes the remover's conditional delete fail), and the
 * subject lists the event's purpose, so a reader of its state finds the history by id. A subject stored before the
 * list was kept gets it from one query of its events. Errors: conflict (raced too often).
 */
async function keepSubject(s: Services, tenantId: string, subject: SubjectDoc, purposeKey: string): Promise<{ stored: StoredSubject | undefined } | undefined> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const again = await s.consents.getSubjectDoc(tenantId, subject.id);
    if (!again || again.subjectId !== subject.subjectId) return undefined;
    if (!again.erasing && again.purposes?.includes(purposeKey)) return { stored: again };
    const listed = again.purposes ?? (await s.consents.eventsOfSubject(tenantId, subject.subjectId)).map((e) => e.purposeKey);
    const purposes = [...new Set([...listed, purposeKey])].sort();
    if (await s.consents.replaceSubject({ ...withoutMeta(again), erasing: null, purposes }, again._etag)) return { stored: undefined };
  }
  throw new AppError("conflict", "the data subject's record is being changed by other requests; retry");
}

/** Reads of a subject's history above this many listed events go by one query instead of one read per event. */
export const LISTED_READ_LIMIT = 100;

/**
 * The events of a subject's history (all purposes, or one), audited or not, read by id: the subject lists its
 * purposes, each purpose's clock its events. A subject or a clock stored before those lists were kept, and a history
 * of more than LISTED_READ_LIMIT events, are read by one query instead; the lists missing are then written (best
 * effort, conditional: a recording meanwhile writes its own). An event listed but gone (being deleted) is left out.
 */
export async function eventsOfHistory(s: Services, tenantId: string, subject: StoredSubject, purposeKey?: string): Promise<EventDoc[]> {
  const purposes = purposeKey !== undefined ? [purposeKey] : subject.purposes;
  const clocks = purposes === undefined ? [] : await Promise.all(purposes.map((p) => s.consents.getClock(tenantId, subject.subjectId, p)));
  const lists = clocks.map((c) => (c ? c.facts : []));
  const listed = lists.reduce((n, l) => n + (l?.length ?? 0), 0);
  if (purposes !== undefined && lists.every((l) => l !== undefined) && listed <= LISTED_READ_LIMIT) {
    const events = await Promise.all(lists.flatMap((l) => l ?? []).map((f) => s.consents.getEvent(tenantId, f.id)));
    return events.filter((e) => e !== undefined);
  }
  const events = await s.consents.eventsOfSubject(tenantId, subject.subjectId, purposeKey);
  if (purposes === undefined) {
    await s.consents.replaceSubject({ ...withoutMeta(subject), purposes: [...new Set(events.map((e) => e.purposeKey))].sort() }, subject._etag).catch(() => false);
  }
  await Promise.all(clocks.filter((c) => c !== undefined && c.facts === undefined).map((c) => fillClock(s, c!, events)));
  return events;
}

/** Writes the list of a clock stored before lists were kept, from its history's events (best effort, conditional). */
async function fillClock(s: Services, clock: StoredClock, events: readonly EventDoc[]): Promise<void> {
  const facts = listOf(events.filter((e) => e.purposeKey === clock.purposeKey));
  await s.consents.saveClock({ ...withoutMeta(clock), facts }, clock._etag).catch(() => false);
}

/**
 * Records events for the subject with this address, one per `facts` (creating the subject if needed). `eventIds`
 * fixes their ids (withdrawal links); otherwise new ones. A subject removed meanwhile makes the recording start again.
 */
export async function recordEvents(
  s: Services,
  tenantId: string,
  subject: { email: string } | { known: SubjectContext },
  list: EventFacts[],
  by: Recorder & { kekVersion: string },
  eventIds?: string[],
): Promise<RecordedEvent[]> {
  for (let attempt = 0; ; attempt++) {
    const ctx = "known" in subject ? subject.known : await subjectFor(s, tenantId, subject.email, by.kekVersion, list.map((f) => f.purposeKey));
    try {
      const out = [];
      for (const [i, facts] of list.entries()) out.push(await appendEvent(s, tenantId, ctx, facts, by, eventIds?.[i] ?? newConsentEventId(), eventIds?.[i] !== undefined));
      return out;
    } catch (err) {
      if (!(err instanceof SubjectGone) || attempt >= 2 || "known" in subject) {
        if (err instanceof SubjectGone) throw new AppError("conflict", "the data subject's record was being removed; retry");
        throw err;
      }
    }
  }
}

// --- the API's recordings ------------------------------------------------------------------------------------------

export interface RecordConsentInput {
  email: string;
  purpose: string;
  noticeVersion?: number;
  decision: Decision;
  method: Method;
  givenAt?: string;
  requestOrigin: RequestOrigin;
  propertyId?: string;
  pageUrl?: string;
  language?: string;
  ipAddress?: string;
  userAgent?: string;
  gpc?: boolean;
  /** ISO 3166-1 alpha-2 of where the person was, as the tenant knows it; otherwise derived from ipAddress. */
  country?: string;
  tcfString?: string;
  gppString?: string;
}

const invalid = (path: string, message: string) => new AppError("validation-failed", `${path} ${message}`, { errors: [{ path, message }] });

/** Checks what the schema cannot: givenAt against the clock, the IP, the purpose and its notice. Returns the facts. */
async function factsOf(s: Services, tenantId: string, input: Omit<RecordConsentInput, "email" | "purpose">, purpose: PurposeDoc, opts: { noticeRequired: boolean }): Promise<EventFacts> {
  const now = s.clock.now();
  const givenAt = input.givenAt ? new Date(input.givenAt) : now;
  const problem = givenAtProblem(givenAt, now);
  if (problem) throw invalid("givenAt", problem);
  if (input.ipAddress !== undefined && !parseIp(input.ipAddress)) throw invalid("ipAddress", "must be an IPv4 address in dotted decimal or an IPv6 address");
  if (input.method === "gpc" && input.decision === "granted") throw invalid("method", "gpc (Global Privacy Control) is an objection signal; it cannot grant consent");
  if (input.method === "gpc" && input.gpc === false) throw invalid("gpc", "cannot be false when the method is gpc: the decision is the browser's GPC signal");
  const location = locationOf(s, input);
  const tcf = input.tcfString === undefined ? null : signalOrInvalid("tcfString", input.tcfString, decodeTcString);
  const gpp = input.gppString === undefined ? null : signalOrInvalid("gppString", input.gppString, decodeGppString);
  let notice: NoticeDoc | undefined;
  if (input.noticeVersion !== undefined) {
    notice = await s.consents.getNotice(tenantId, purpose.key, input.noticeVersion);
    if (!notice) throw invalid("noticeVersion", `names no notice version of the purpose '${purpose.key}'`);
  } else if (opts.noticeRequired) {
    throw invalid("noticeVersion", `is required when the decision is ${input.decision}: it names the notice the person was shown`);
  } else if (purpose.lastNoticeVersion > 0) {
    // A withdrawal refers to whatever was consented to: the notice in force when it was made, if any. That is the last
    // version assigned, unless its request died before writing it (a gap): then the newest one written.
    notice = (await s.consents.getNotice(tenantId, purpose.key, purpose.lastNoticeVersion)) ?? (await s.consents.listNotices(tenantId, purpose.key)).at(-1);
  }
  return {
    purposeKey: purpose.key,
    noticeVersion: notice?.version ?? null,
    noticeSha256: notice?.sha256 ?? null,
    decision: input.decision,
    method: input.method,
    requestOrigin: input.requestOrigin,
    propertyId: input.propertyId ?? null,
    language: input.language ?? null,
    givenAt: givenAt.toISOString(),
    ipAddress: input.ipAddress ?? null,
    userAgent: input.userAgent ?? null,
    pageUrl: input.pageUrl ?? null,
    // A GPC-only event is the signal itself.
    gpc: input.gpc ?? (input.method === "gpc" ? true : null),
    location,
    tcf,
    gpp,
  };
}

/**
 * The event's country: the tenant's, checked against ISO 3166-1 (`given`), or else looked up from the IP address in
 * the offline database shipped with the service (`derived`, with its version), or null. Never a network look-up.
 */
function locationOf(s: Services, input: { country?: string; ipAddress?: string }): EventLocation | null {
  if (input.country !== undefined) {
    const problem = countryCodeProblem(input.country);
    if (problem) throw invalid("country", problem);
    return { country: input.country, source: "given", database: null };
  }
  const ip = input.ipAddress !== undefined ? parseIp(input.ipAddress) : undefined;
  if (!ip) return null;
  // An IPv6 address that carries an IPv4 one (6to4, NAT64, Teredo, IPv4-compatible) is placed by that address.
  const hit = s.ipCountry.lookup(embeddedIpv4(ip) ?? ip.full);
  // The data's own codes are checked too: one that is not an assigned code (a regional placeholder) is not a country.
  return hit && countryCodeProblem(hit.country) === undefined ? { country: hit.country, source: "derived", database: hit.database } : null;
}

/** A decoded IAB string, or a 422 naming the field and what is wrong with it. */
function signalOrInvalid<H>(path: string, text: string, decode: (t: string) => { ok: true; value: H } | { ok: false; problem: string }): { text: string; header: H } {
  const r = decode(text);
  if (!r.ok) throw invalid(path, r.problem);
  return { text, header: r.value };
}

async function purposeOrInvalid(s: Services, tenantId: string, key: string): Promise<PurposeDoc> {
  const purpose = await s.consents.getPurpose(tenantId, key);
  if (!purpose) throw unknownPurpose();
  return purpose;
}

/**
 * POST /consents: records one decision. Errors: validation-failed (unknown purpose or notice version, givenAt too
 * far ahead, an IP that is not one, gpc granting), conflict.
 */
export async function recordConsent(s: Services, caller: TenantCaller, input: RecordConsentInput): Promise<ConsentEventView> {
  const purpose = await purposeOrInvalid(s, caller.tenantId, input.purpose);
  const facts = await factsOf(s, caller.tenantId, input, purpose, { noticeRequired: input.decision !== "withdrawn" });
  const [event] = await recordEvents(s, caller.tenantId, { email: input.email }, [facts], { ...caller, linkId: null });
  return eventView(event!, event!.firstGpc);
}

export type WithdrawInput = Omit<RecordConsentInput, "decision" | "noticeVersion" | "method" | "requestOrigin"> & {
  method?: Method;
  requestOrigin?: RequestOrigin;
};

/**
 * POST /consents/withdraw: withdraws one purpose or `all` (every purpose of the tenant) for the subject, in one call.
 * A withdrawal of a purpose never consented to is recorded too: the person's wish is the record. Errors:
 * validation-failed (unknown purpose, givenAt, IP), conflict.
 */
export async function withdrawConsent(s: Services, caller: TenantCaller, input: WithdrawInput): Promise<{ subjectId: string; eventIds: string[] }> {
  const purposes = input.purpose === ALL_PURPOSES ? await s.consents.listPurposes(caller.tenantId, MAX_PURPOSES) : [await purposeOrInvalid(s, caller.tenantId, input.purpose)];
  if (purposes.length === 0) throw invalid("purpose", "is 'all' but the tenant has no purposes yet");
  const base = { ...input, decision: "withdrawn" as const, method: input.method ?? "api", requestOrigin: input.requestOrigin ?? "api" };
  const list: EventFacts[] = [];
  for (const p of purposes) list.push(await factsOf(s, caller.tenantId, base, p, { noticeRequired: false }));
  const events = await recordEvents(s, caller.tenantId, { email: input.email }, list, { ...caller, linkId: null });
  return { subjectId: events[0]!.subjectId, eventIds: events.map((e) => e.id) };
}

// --- reading ---------------------------------------------------------------------------------------------------------

/**
 * POST /consents/search: the subject's current state per purpose and its full history, oldest first (nothing
 * decrypted). A lookup of a known subject is written to the audit log (`consent.searched`).
 */
export async function searchConsents(
  s: Services,
  caller: TenantCaller,
  email: string,
): Promise<{ subjectId: string | null; states: PurposeStateView[]; history: ConsentEventView[] }> {
  const subject = await findSubject(s, caller.tenantId, email);
  if (!subject) return { subjectId: null, states: [], history: [] };
  const events = recorded(await eventsOfHistory(s, caller.tenantId, subject));
  const history = [...events].sort((a, b) => decisionOrder(factOf(a), factOf(b)));
  await recordAudit(s, caller.tenantId, caller, "consent.searched", { type: "consent-subject", id: subject.subjectId }, { events: history.length });
  const firstGpc = firstGpcSeqs(history);
  return {
    subjectId: subject.subjectId,
    states: stateViews(history),
    history: history.map((e) => eventView(e, firstGpc)),
  };
}

/** GET /consents/{id}: one recorded event (nothing decrypted). Errors: not-found (also another tenant's id). */
export async function getConsentEvent(s: Services, caller: TenantCaller, eventId: string): Promise<ConsentEventView> {
  const e = await s.consents.getEvent(caller.tenantId, eventId);
  if (!e || !e.audit) throw new AppError("not-found", "no consent event with this id");
  const event = { ...e, audit: e.audit };
  return eventView(event, await gpcHistoryOf(s, caller.tenantId, [event]));
}

export interface ConsentSummary {
  purpose: string;
  /** Recorded events per notice version (null: withdrawals made before the purpose had a notice) and decision. */
  events: Array<{ noticeVersion: number | null } & Record<Decision, number>>;
  /**
   * Subjects whose latest decision was made under each notice version, per decision. Read from the evidence clocks,
   * which follow the events within moments of each recording.
   */
  current: Array<{ noticeVersion: number | null } & Record<Decision, number>>;
}

/** GET /purposes/{key}/consents/summary: counts per notice version and decision. Errors: not-found. */
export async function consentSummary(s: Services, caller: TenantCaller, key: string): Promise<ConsentSummary> {
  const { tenantId } = caller;
  await mustGetPurpose(s, tenantId, key);
  const versions: Array<number | null> = [null, ...(await s.consents.listNotices(tenantId, key)).map((n) => n.version)];
  const row = async (count: (v: number | null, d: Decision) => Promise<number>, v: number | null) => {
    const [granted, denied, withdrawn] = await Promise.all(DECISIONS.map((d) => count(v, d)));
    return { noticeVersion: v, granted: granted!, denied: denied!, withdrawn: withdrawn! };
  };
  const nonEmpty = (r: { granted: number; denied: number; withdrawn: number; noticeVersion: number | null }) => r.noticeVersion !== null || r.granted + r.denied + r.withdrawn > 0;
  const events = await Promise.all(versions.map((v) => row((vv, d) => s.consents.countEvents(tenantId, key, vv, d), v)));
  const current = await Promise.all(versions.map((v) => row((vv, d) => s.consents.countCurrent(tenantId, key, vv, d), v)));
  return { purpose: key, events: events.filter(nonEmpty), current: current.filter(nonEmpty) };
}

// --- processing that rests on consent ------------------------------------------------------------------------------

/**
 * Refuses processing on consent unless every one of `emails` has `granted` as its latest decision for `purposeKey`.
 * Errors: validation-failed (no such purpose, naming `path`); consent-not-granted, naming the purpose and how many
 * subjects are in which state, never an address.
 */
export async function requireConsent(s: Services, tenantId: string, purposeKey: string, emails: readonly string[], path: string): Promise<void> {
  if (!(await s.consents.getPurpose(tenantId, purposeKey))) throw unknownPurpose(path);
  const lookupSecret = await s.keys.lookupSecret(tenantId);
  const lookups = [...new Set(emails.map((e) => lookupHash(lookupSecret, normaliseEmail(e))))];
  const states = new Map<ConsentCheck, number>();
  const check = async (lookup: string): Promise<ConsentCheck> => {
    const subject = await s.consents.getSubjectByLookup(tenantId, lookup);
    return subject ? checkConsent(recorded(await eventsOfHistory(s, tenantId, subject, purposeKey)).map(factOf), purposeKey) : "no-record";
  };
  // Up to 1,000 subjects: a few reads at a time, not one after the other.
  for (let i = 0; i < lookups.length; i += REQUIRE_CONSENT_CONCURRENCY) {
    for (const state of await Promise.all(lookups.slice(i, i + REQUIRE_CONSENT_CONCURRENCY).map(check))) states.set(state, (states.get(state) ?? 0) + 1);
  }
  const refused = lookups.length - (states.get("granted") ?? 0);
  if (refused === 0) return;
  const parts = (["withdrawn", "denied", "no-record"] as const).filter((st) => states.has(st)).map((st) => `${states.get(st)} ${st}`);
  throw new AppError(
    "consent-not-granted",
    `consent for the purpose '${purposeKey}' is not in force for ${refused} of ${lookups.length} data subject${lookups.length === 1 ? "" : "s"} (${parts.join(", ")}); record their consent first or do not name the purpose`,
  );
}
