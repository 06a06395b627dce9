/**
 * The retention of consent records (class `consent-evidence`, shared/domain/retention.ts): a subject's history for
 * a purpose is kept while the consent is in force and then CONSENT_EVIDENCE_YEARS after it ended (EDPB 05/2020
 * para. 107), then erased with a receipt. The retention sweep (retention.ts) finds three kinds of item, each decided
 * again by the worker from what is stored:
 *
 * - `clock:<subject>:<purpose>`: a history whose evidence clock says it is due. The worker reads the events, and
 *   erases only if the events themselves say so (evidenceClock): it holds the clock under a five-minute lease (naming
 *   the events), deletes the events, writes `consent.evidence-erased` once, and leaves the clock as a tombstone that
 *   names its sweep and the erased ids (for the sweep's receipt). When that was the subject's last history, the
 *   subject goes too: its data key and encrypted address (crypto-shredding), its link markers and counters.
 * - `ce-…` (an event id): an event whose recording died before its audit entry was noted on it, an hour on. If the
 *   entry exists, the event is finished (its position noted); if not, the event was never part of the record and goes.
 * - `subject:<lookup>`: a subject left unconfirmed (its request died before its first event) or left half-removed,
 *   an hour on: removed if it has no events and no live history, otherwise settled.
 * - `evidence:<event id>`: an evidence file whose PUT claimed it and died (consent-evidence.ts), 35 minutes on: the
 *   attempt's blocks and the claim go (or, the event erased meanwhile, everything of its evidence).
 *
 * An erased history's events take their evidence files with them: blobs first, then the record, then the event, for
 * every event the erasure names (a resumed erasure repeats them; each step is idempotent).
 *
 * Removing a subject races with a request recording a new event for it; the protocol: the remover marks the subject
 * `erasing` (etag), checks it has no events, and deletes it only if the document is still exactly as it marked it. A
 * recorder creates its event first and then reads the subject again: if it is marked, it clears the mark (which makes
 * the removal's conditional delete fail); if it is gone, it deletes its own event and starts again with a new subject.
 */
import { createHash } from "node:crypto";
import { evidenceClock } from "../domain/consent";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import { recordAuditOnce, type Actor } from "./audit-trail";
import { EVIDENCE_RECEIVING_LEASE_MS, eraseEvidence, settleStaleEvidence } from "./consent-evidence";
import { clockOf, factOf, refreshClock } from "./consents";

/** How long a worker holds a history it erases. */
const ERASURE_LEASE_MS = 5 * 60_000;
/** How long a recording or a removal may take before the sweep finishes or undoes what it left. */
export const CONSENT_SETTLE_MS = 60 * 60_000;

export type ConsentPurgeOutcome = "purged" | "skipped" | "busy";

export interface DueConsentItem {
  tenantId: string;
  id: string;
  dueAt: string;
}

/** Due items of the class across all tenants, oldest first, at most `limit` (for the sweep only). */
export async function findDueConsentItems(s: Services, now: Date, limit: number): Promise<DueConsentItem[]> {
  const settled = new Date(now.getTime() - CONSENT_SETTLE_MS);
  const [clocks, events, subjects, evidence] = await Promise.all([
    s.consents.findDueClocksAcrossTenants(now, limit),
    s.consents.findUnfinishedEventsAcrossTenants(settled, limit),
    s.consents.findUnsettledSubjectsAcrossTenants(settled, limit),
    s.consents.findStaleEvidenceAcrossTenants(new Date(now.getTime() - EVIDENCE_RECEIVING_LEASE_MS), limit),
  ]);
  const due = (iso: string) => new Date(Date.parse(iso) + CONSENT_SETTLE_MS).toISOString();
  return [
    ...clocks.map((c) => ({ tenantId: c.tenantId, id: c.id, dueAt: c.evidenceUntil })),
    ...events.map((e) => ({ tenantId: e.tenantId, id: e.id, dueAt: due(e.recordedAt) })),
    ...subjects.map((x) => ({ tenantId: x.tenantId, id: x.id, dueAt: due(x.since) })),
    ...evidence.map((x) => ({ tenantId: x.tenantId, id: x.id, dueAt: new Date(Date.parse(x.since) + EVIDENCE_RECEIVING_LEASE_MS).toISOString() })),
  ]
    .sort((a, b) => a.dueAt.localeCompare(b.dueAt))
    .slice(0, limit);
}

/** The worker's share for one item: re-read, decide, act. */
export async function purgeConsentItem(s: Services, item: { tenantId: string; id: string }, sweepId: string, by: Actor): Promise<ConsentPurgeOutcome> {
  if (item.id.startsWith("clock:")) return eraseHistory(s, item.tenantId, item.id, sweepId, by);
  if (item.id.startsWith("ce-")) return finishOrDropEvent(s, item.tenantId, item.id);
  if (item.id.startsWith("subject:")) return (await settleSubject(s, item.tenantId, item.id)) ? "purged" : "skipped";
  if (item.id.startsWith("evidence:")) return settleStaleEvidence(s, item.tenantId, item.id);
  return "skipped";
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * Erases one history (`clock:<subject>:<purpose>`) now, for a data subject's erasure request whose tenant chose not to
 * keep consent proof (issue 19): as the sweep erases a history that is due (evidence files, events,
 * `consent.evidence-erased` once, the clock left a tombstone, the subject with its last history), without waiting for
 * the evidence period. `requestId` (the erasure request) stands where a sweep's id would.
 */
export function eraseHistoryOnRequest(s: Services, tenantId: string, clockId: string, requestId: string, by: Actor): Promise<ConsentPurgeOutcome> {
  return eraseHistory(s, tenantId, clockId, requestId, by, { onRequest: true });
}

async function eraseHistory(s: Services, tenantId: string, id: string, sweepId: string, by: Actor, opts: { onRequest?: boolean } = {}): Promise<ConsentPurgeOutcome> {
  const clock = await s.consents.getClockById(tenantId, id);
  if (!clock || clock.erasure?.erasedAt) return "skipped";
  const now = s.clock.now();
  if (clock.erasure && Date.parse(clock.erasure.leaseUntil) > now.getTime() && clock.erasure.sweepId !== sweepId) return "busy";
  const events = await s.consents.eventsOfSubject(tenantId, clock.subjectId, clock.purposeKey);
  const ev = evidenceClock(events.map(factOf), s.settings.consentEvidenceYears);
  // Due only if the events say so: in force, or a period not over (a new event since the clock was computed).
  if (!opts.onRequest && events.length > 0 && (ev.evidenceUntil === null || Date.parse(ev.evidenceUntil) > now.getTime())) {
    await refreshClock(s, tenantId, clock.subjectId, clock.purposeKey);
    return "skipped";
  }
  // An erasure an earlier run began keeps the ids it had already deleted.
  const eventIds = [...new Set([...(clock.erasure?.eventIds ?? []), ...events.map((e) => e.id)])].sort();
  if (eventIds.length === 0) {
    // A history whose only events were never recorded (removed as such): nothing to erase or receipt, the clock goes.
    if (!(await s.consents.deleteClock(tenantId, id, clock._etag))) return "busy";
    await settleIfLast(s, tenantId, clock.subjectId);
    return "skipped";
  }
  const lease = { ...withoutMeta(clock), erasure: { sweepId, leaseUntil: new Date(now.getTime() + ERASURE_LEASE_MS).toISOString(), erasedAt: null, eventIds } };
  if (!(await s.consents.saveClock(lease, clock._etag))) return "busy";
  // Each event's evidence file goes before the event (so none is left without the event that names it).
  for (const eventId of eventIds) await eraseEvidence(s, tenantId, eventId);
  for (const e of events) await s.consents.deleteEvent(tenantId, e.id);
  const seq = await recordAuditOnce(
    s,
    tenantId,
    { ...by, requestId: null },
    "consent.evidence-erased",
    { type: "consent-subject", id: clock.subjectId },
    {
      purposeKey: clock.purposeKey,
      events: eventIds.length,
      eventIdsHash: sha256(eventIds.join("\n")),
      eventIdsHashAlgorithm: "sha256 over the sorted event ids joined by newlines",
      evidenceUntil: clock.evidenceUntil,
      sweepId,
    },
    `consent.evidence-erased:${tenantId}:${id}:${clock.evidenceUntil ?? ""}`,
  );
  if (seq === undefined) return "busy";
  await closeErasedHistory(s, tenantId, clock.subjectId, clock.purposeKey, eventIds, sweepId);
  await settleIfLast(s, tenantId, clock.subjectId);
  return "purged";
}

/**
 * Takes the erased events out of the clock's list. With none left and the lease still this sweep's, the clock becomes
 * a tombstone naming the sweep; an event recorded meanwhile has made the history live again (the erased events are
 * gone all the same, and the list says so). A crash before this leaves the lease, which expires: the next sweep erases
 * again (nothing left to delete) and ends here.
 */
async function closeErasedHistory(s: Services, tenantId: string, subjectId: string, purposeKey: string, eventIds: readonly string[], sweepId: string): Promise<void> {
  const gone = new Set(eventIds);
  for (let attempt = 0; attempt < 20; attempt++) {
    const clock = await s.consents.getClock(tenantId, subjectId, purposeKey);
    if (!clock || clock.erasure?.erasedAt) return;
    const facts = (clock.facts ?? []).filter((f) => !gone.has(f.id));
    const doc =
      facts.length === 0 && clock.erasure?.sweepId === sweepId
        ? { ...withoutMeta(clock), facts, erasure: { ...clock.erasure, erasedAt: s.clock.now().toISOString() } }
        : clockOf(s, tenantId, subjectId, purposeKey, facts, clock.erasure);
    if (await s.consents.saveClock(doc, clock._etag)) return;
  }
}

/** With the subject's last history gone, the subject goes too (settleSubject checks again under its protocol). */
async function settleIfLast(s: Services, tenantId: string, subjectId: string): Promise<void> {
  if ((await s.consents.liveClocksOfSubject(tenantId, subjectId)).length > 0) return;
  const subject = await s.consents.getSubjectById(tenantId, subjectId);
  if (subject) await settleSubject(s, tenantId, subject.id);
}

/** An event the log may not show: finish it when its entry exists, otherwise remove it (it never was recorded). */
async function finishOrDropEvent(s: Services, tenantId: string, eventId: string): Promise<ConsentPurgeOutcome> {
  const event = await s.consents.getEvent(tenantId, eventId);
  if (!event || event.audit) return "skipped";
  if (s.clock.now().getTime() - Date.parse(event.recordedAt) < CONSENT_SETTLE_MS) return "skipped";
  const seq = await s.audit.findByTarget(tenantId, "consent.recorded", eventId);
  const hash = seq !== undefined ? await s.audit.entryHash(tenantId, seq) : undefined;
  if (seq !== undefined && hash) {
    await s.consents.setEventAudit(tenantId, eventId, { seq, hash });
    await refreshClock(s, tenantId, event.subjectId, event.purposeKey);
    return "skipped";
  }
  await s.consents.deleteEvent(tenantId, eventId);
  await refreshClock(s, tenantId, event.subjectId, event.purposeKey);
  return "purged";
}

/**
 * Removes a subject that has no events and no live history (its data key, encrypted address, link markers and
 * counters), by the protocol in the module comment; otherwise clears its marks. Returns whether it was removed.
 */
async function settleSubject(s: Services, tenantId: string, docId: string): Promise<boolean> {
  const subject = await s.consents.getSubjectDoc(tenantId, docId);
  if (!subject) return false;
  const now = s.clock.now().toISOString();
  const marked = { ...withoutMeta(subject), erasing: { since: subject.erasing?.since ?? now } };
  if (!(await s.consents.replaceSubject(marked, subject._etag))) return false;
  const current = await s.consents.getSubjectDoc(tenantId, docId);
  if (!current || !current.erasing) return false;
  const events = await s.consents.eventsOfSubject(tenantId, subject.subjectId);
  const clocks = await s.consents.liveClocksOfSubject(tenantId, subject.subjectId);
  if (events.length > 0 || clocks.length > 0) {
    // It still has a history: it stays, confirmed.
    await s.consents.replaceSubject({ ...withoutMeta(current), erasing: null, unconfirmedSince: null }, current._etag);
    return false;
  }
  if (!(await s.consents.deleteSubject(tenantId, docId, current._etag))) return false;
  await s.consents.deleteLinkRecordsOfSubject(tenantId, subject.subjectId);
  return true;
}

/** What a sweep's receipt says about the consent histories it erased, per tenant. */
export async function erasedBySweep(s: Services, sweepId: string): Promise<Map<string, { histories: number; eventIds: string[] }>> {
  const out = new Map<string, { histories: number; eventIds: string[] }>();
  for (const row of await s.consents.findErasedBySweepAcrossTenants(sweepId)) {
    const t = out.get(row.tenantId) ?? { histories: 0, eventIds: [] };
    t.histories++;
    t.eventIds.push(...row.eventIds);
    out.set(row.tenantId, t);
  }
  return out;
}
