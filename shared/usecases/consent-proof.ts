/**
 * The proof document (GDPR Art. 7(1): the controller must be able to demonstrate consent; EDPB Guidelines 05/2020
 * para. 108: how and when it was obtained and what the person was shown). For one subject and one purpose: every
 * recorded event oldest first, the notice in force at each (its text, or its URL and the SHA-256 of the rendered
 * text), the evidence fields kept encrypted (page URL, user agent, full IP when the tenant keeps it), and for each
 * event what is needed to check it without trusting the service:
 *
 * - `digest.content`: the event's content as its digest covers it, and `digest.canonical`, its canonical JSON (keys
 *   sorted at every level, no spaces);
 * - `digest.key`: the event's own HMAC key (hex; HKDF from a tenant secret, unique to the event: it opens no other
 *   event's digest) and `digest.value` = HMAC-SHA256(key, UTF-8 of canonical);
 * - `audit`: the audit entry that recorded the event (its sequence number and hash, and the entry itself, whose
 *   `details.digest` is the digest): SHA-256 of "safedata.audit.v1\n" followed by the canonical JSON of the entry
 *   without its hash is the hash, and GET /api/v1/audit/verify shows the entry belongs to the tenant's hash chain
 *   (and to the heads anchored outside the database).
 *
 * The JSON is the source of truth; the HTML rendering (templates/pages/consent-proof.<language>.mustache) prints it,
 * escaped, with no scripts. Issuing a proof shows decrypted personal fields, so it is written to the audit log first
 * (`consent.proof-issued`, naming the fields); if that fails, nothing is shown.
 */
import { consentDigest, decisionOrder, digestInput, eventDigestKey, projectStates, type Decision, type DigestContent, type DigestScheme, type LegalBasis } from "../domain/consent";
import { eventConflictsWithGpc, firstGpcSeqs, stateConflictsWithGpc, type EventLocation, type GppHeader, type TcfHeader } from "../domain/consent-signals";
import type { AuditEntry } from "../domain/audit-chain";
import { DEFAULT_LANGUAGE, type Language } from "../domain/language";
import { DEFAULT_TIME_ZONE } from "../domain/tenant";
import { formatInstant } from "../domain/time";
import { AppError } from "../errors";
import type { Services } from "../services";
import type { EvidenceDoc, NoticeDoc } from "../stores/consent-store";
import { recordAudit, type TenantCaller } from "./audit-trail";
import { openConsentField, unwrapSubjectKey } from "./consent-keys";
import { digestContentOf, eventsOfHistory, factOf, findSubject, openSignals, recorded } from "./consents";

export const PROOF_VERSION = "safedata.consent-proof.v1";

export interface ProofEvent {
  eventId: string;
  givenAt: string;
  recordedAt: string;
  decision: Decision;
  method: string;
  requestOrigin: string;
  propertyId: string | null;
  language: string | null;
  /** Truncated: /24 (IPv4) or /48 (IPv6). */
  ipAddress: string | null;
  /** The country of the IP address, given or derived (with the database), covered by v2 digests. */
  country: EventLocation | null;
  gpc: boolean | null;
  conflictsWithGpc: boolean;
  recordedBy: string;
  linkId: string | null;
  /** The IAB strings as sent (decrypted) with their decoded headers; the v2 digest covers each string's SHA-256. */
  signals: { tcf: { string: string | null; header: TcfHeader } | null; gpp: { string: string | null; header: GppHeader } | null };
  /**
   * The evidence file (a copy of what the person was shown), when one was sent: its type, size and SHA-256, and the
   * audit entry `consent.evidence-stored` that records them; the file itself from `url`.
   */
  evidenceFile: { contentType: string; bytes: number; sha256: string; storedAt: string; url: string; audit: { seq: number; hash: string; entry: AuditEntry } } | null;
  /** The notice version the event names, as stored (null: a withdrawal made before the purpose had a notice). */
  notice: { version: number; language: string; text: string | null; url: string | null; sha256: string } | null;
  /** Kept encrypted with the subject's key; not covered by the digest. Null where not sent or not kept. */
  evidence: { pageUrl: string | null; userAgent: string | null; fullIpAddress: string | null };
  digest: { scheme: DigestScheme; algorithm: "HMAC-SHA256"; key: string; content: DigestContent; canonical: string; value: string };
  audit: { seq: number; hash: string; entry: AuditEntry };
}

export interface ConsentProof {
  proofVersion: typeof PROOF_VERSION;
  generatedAt: string;
  controller: { tenantId: string; name: string };
  subject: { subjectId: string; subjectHash: string; subjectHashAlgorithm: string };
  purpose: { key: string; description: string; legalBasis: LegalBasis };
  currentState: { decision: Decision; since: string; eventId: string; noticeVersion: number | null; conflictsWithGpc: boolean };
  events: ProofEvent[];
  verification: { steps: string[]; auditVerify: string[] };
}

const HASH_NOTE = "HMAC-SHA256 of the normalised e-mail address (trimmed, lower case, Unicode NFC) under the controller's lookup secret; the address itself is not in this document";

const STEPS = [
  "For each event, compute HMAC-SHA256 with digest.key (hex-decoded, 32 bytes) over the UTF-8 bytes of digest.canonical; it equals digest.value.",
  "digest.canonical is the canonical JSON of digest.content: object keys sorted by code unit at every level, no whitespace, strings as JSON.stringify writes them; recompute it from digest.content to check the content shown is the content digested.",
  "audit.entry.details.digest equals digest.value, and audit.entry.target.id is the event id.",
  "SHA-256 over the UTF-8 of 'safedata.audit.v1\\n' followed by the canonical JSON of audit.entry without its 'hash' field equals audit.hash.",
  "Call each URL in verification.auditVerify with the tenant's API key: the answer is valid, and its lastHash equals the event's audit.hash. Verifying the whole chain (GET /api/v1/audit/verify, continued with next) also shows no entry before it was removed or changed, and checks the chain against the heads anchored hourly outside the database.",
  "For a safedata.consent-digest.v2 event, digest.content also holds the location (country, given or derived, and the database) and, for each IAB string, the SHA-256 of signals.<tcf|gpp>.string (UTF-8, hex) and its header: recompute the hashes from the strings shown.",
  "An evidence file's SHA-256 (evidenceFile.sha256) equals the SHA-256 of the file downloaded from evidenceFile.url, and evidenceFile.audit.entry.details.sha256; that entry belongs to the chain like the event's own (verify it the same way).",
  "The evidence fields (page URL, user agent, full IP address) are kept encrypted and are not covered by the digest; everything else shown is.",
];

/**
 * The proof of one subject's consent for one purpose. Errors: validation-failed (no such purpose), not-found (no
 * recorded event of this subject for the purpose).
 */
export async function consentProof(s: Services, caller: TenantCaller, input: { email: string; purpose: string }): Promise<ConsentProof> {
  const { tenantId } = caller;
  const purpose = await s.consents.getPurpose(tenantId, input.purpose);
  if (!purpose) throw new AppError("validation-failed", "purpose names no purpose of this tenant", { errors: [{ path: "purpose", message: "no purpose with this key" }] });
  const subject = await findSubject(s, tenantId, input.email);
  const events = subject ? recorded(await eventsOfHistory(s, tenantId, subject, purpose.key)) : [];
  if (!subject || events.length === 0) throw new AppError("not-found", "no consent events of this data subject for this purpose");
  events.sort((a, b) => decisionOrder(factOf(a), factOf(b)));

  const [tenant, lookupSecret, dataKey] = await Promise.all([s.tenants.get(tenantId), s.keys.lookupSecret(tenantId), unwrapSubjectKey(s, subject)]);
  // What each event shows from elsewhere, read at once: its notice, its evidence file and its audit entry.
  const versions = [...new Set(events.map((e) => e.noticeVersion).filter((v) => v !== null))];
  const notices = new Map<number, NoticeDoc | undefined>(await Promise.all(versions.map(async (v) => [v, await s.consents.getNotice(tenantId, purpose.key, v)] as const)));
  const files = await Promise.all(events.map(async (e) => evidenceFileOf(s, tenantId, await s.consents.getEvidence(tenantId, e.id))));
  const entries = await Promise.all(events.map((e) => s.audit.entry(tenantId, e.audit.seq)));
  const fieldsShown = new Set<string>();
  const out: ProofEvent[] = [];
  const firstGpc = firstGpcSeqs(events);
  for (const [i, e] of events.entries()) {
    const notice = e.noticeVersion !== null ? notices.get(e.noticeVersion) : undefined;
    const open = (field: "pageUrl" | "userAgent" | "ipAddress") => {
      const sealed = e.personal[field];
      if (sealed === null) return null;
      fieldsShown.add(field);
      return openConsentField(dataKey, tenantId, e.id, field, sealed);
    };
    const key = eventDigestKey(lookupSecret, tenantId, e.id);
    const strings = openSignals(dataKey, e);
    if (strings.tcf !== null) fieldsShown.add("tcfString");
    if (strings.gpp !== null) fieldsShown.add("gppString");
    const content = digestContentOf(e, strings);
    const file = files[i]!;
    const entry = entries[i];
    if (!entry) throw new Error(`audit entry ${e.audit.seq} of tenant ${tenantId} is missing`);
    out.push({
      eventId: e.id,
      givenAt: e.givenAt,
      recordedAt: e.recordedAt,
      decision: e.decision,
      method: e.method,
      requestOrigin: e.requestOrigin,
      propertyId: e.propertyId,
      language: e.language,
      ipAddress: e.ipTruncated,
      country: e.location,
      gpc: e.gpc,
      conflictsWithGpc: eventConflictsWithGpc(e, firstGpc),
      recordedBy: e.actor,
      linkId: e.linkId,
      signals: {
        tcf: e.signals.tcf ? { string: strings.tcf, header: e.signals.tcf.header } : null,
        gpp: e.signals.gpp ? { string: strings.gpp, header: e.signals.gpp.header } : null,
      },
      evidenceFile: file,
      notice: notice ? { version: notice.version, language: notice.language, text: notice.text, url: notice.url, sha256: notice.sha256 } : null,
      evidence: { pageUrl: open("pageUrl"), userAgent: open("userAgent"), fullIpAddress: open("ipAddress") },
      // The digest as recomputed now; a stored one that differs (the event was changed) shows here as a mismatch.
      digest: { scheme: content.scheme, algorithm: "HMAC-SHA256", key: key.toString("hex"), content, canonical: digestInput(content), value: e.digest },
      audit: { seq: e.audit.seq, hash: e.audit.hash, entry },
    });
    if (consentDigest(key, content) !== e.digest) throw new AppError("integrity-error", "a consent event no longer matches its digest; the proof was not issued and the incident was logged");
  }
  const state = projectStates(events.map(factOf))[0]!;
  await recordAudit(s, tenantId, caller, "consent.proof-issued", { type: "consent-subject", id: subject.subjectId }, {
    purposeKey: purpose.key,
    events: out.length,
    fields: [...fieldsShown].sort(),
  });
  return {
    proofVersion: PROOF_VERSION,
    generatedAt: s.clock.now().toISOString(),
    controller: { tenantId, name: tenant?.name ?? "" },
    subject: { subjectId: subject.subjectId, subjectHash: subject.lookup, subjectHashAlgorithm: HASH_NOTE },
    purpose: { key: purpose.key, description: purpose.description, legalBasis: purpose.legalBasis },
    currentState: { decision: state.decision, since: state.since, eventId: state.eventId, noticeVersion: state.noticeVersion, conflictsWithGpc: stateConflictsWithGpc(state.decision, events) },
    events: out,
    verification: {
      steps: STEPS,
      auditVerify: out.map((e) => `/api/v1/audit/verify?fromSeq=${e.audit.seq}${e.audit.seq > 1 ? `&prevHash=${e.audit.entry.prevHash}` : ""}&maxEntries=1`),
    },
  };
}

/** An event's stored evidence file as the proof shows it (null when none was stored). */
async function evidenceFileOf(s: Services, tenantId: string, doc: EvidenceDoc | undefined): Promise<ProofEvent["evidenceFile"]> {
  if (!doc?.content || !doc.audit) return null;
  const entry = await s.audit.entry(tenantId, doc.audit.seq);
  if (!entry) throw new Error(`audit entry ${doc.audit.seq} of tenant ${tenantId} is missing`);
  return {
    contentType: doc.contentType,
    bytes: doc.size,
    sha256: doc.content.sha256,
    storedAt: doc.content.storedAt,
    url: `/api/v1/consents/${doc.eventId}/evidence`,
    audit: { seq: doc.audit.seq, hash: doc.audit.hash, entry },
  };
}

/** A proof without what was decrypted for it: what an Idempotency-Key replay may return (it is not logged again). */
export function proofWithoutEvidence(proof: ConsentProof): ConsentProof {
  return {
    ...proof,
    events: proof.events.map((e) => ({
      ...e,
      evidence: { pageUrl: null, userAgent: null, fullIpAddress: null },
      signals: {
        tcf: e.signals.tcf ? { ...e.signals.tcf, string: null } : null,
        gpp: e.signals.gpp ? { ...e.signals.gpp, string: null } : null,
      },
    })),
  };
}

/** The printable rendering of a proof, in the caller's tenant's language and time zone (escaped; no scripts). */
export async function consentProofHtml(s: Services, caller: TenantCaller, proof: ConsentProof): Promise<string> {
  const tenant = await s.tenants.get(caller.tenantId);
  return proofHtml(s, proof, tenant?.language ?? DEFAULT_LANGUAGE, tenant?.timeZone ?? DEFAULT_TIME_ZONE);
}

/** The printable rendering of a proof in `language` and `timeZone` (escaped; no scripts). */
export function proofHtml(s: Services, proof: ConsentProof, language: Language, timeZone: string): string {
  const when = (iso: string) => `${formatInstant(new Date(iso), language, timeZone)} (${iso})`;
  const text = (v: string | number | boolean | null) => (v === null ? "—" : String(v));
  return s.pages.render("consent-proof", language, {
    generatedAt: when(proof.generatedAt),
    controllerName: proof.controller.name,
    tenantId: proof.controller.tenantId,
    subjectId: proof.subject.subjectId,
    subjectHash: proof.subject.subjectHash,
    subjectHashAlgorithm: proof.subject.subjectHashAlgorithm,
    purposeKey: proof.purpose.key,
    purposeDescription: proof.purpose.description,
    legalBasis: proof.purpose.legalBasis,
    currentDecision: proof.currentState.decision,
    currentSince: when(proof.currentState.since),
    currentConflictsWithGpc: proof.currentState.conflictsWithGpc,
    events: proof.events.map((e, i) => ({
      n: i + 1,
      eventId: e.eventId,
      givenAt: when(e.givenAt),
      recordedAt: when(e.recordedAt),
      decision: e.decision,
      method: e.method,
      requestOrigin: e.requestOrigin,
      propertyId: text(e.propertyId),
      language: text(e.language),
      ipAddress: text(e.ipAddress),
      gpc: text(e.gpc),
      conflictsWithGpc: e.conflictsWithGpc,
      country: e.country ? `${e.country.country} (${e.country.source}${e.country.database ? `: ${e.country.database}` : ""})` : "—",
      hasTcf: e.signals.tcf !== null,
      tcfString: text(e.signals.tcf?.string ?? null),
      tcfCmp: text(e.signals.tcf ? `${e.signals.tcf.header.cmpId} v${e.signals.tcf.header.cmpVersion}` : null),
      tcfVendorList: text(e.signals.tcf?.header.vendorListVersion ?? null),
      tcfPolicy: text(e.signals.tcf?.header.policyVersion ?? null),
      hasGpp: e.signals.gpp !== null,
      gppString: text(e.signals.gpp?.string ?? null),
      gppSections: text(e.signals.gpp ? e.signals.gpp.header.sections.join(", ") : null),
      hasEvidenceFile: e.evidenceFile !== null,
      evidenceFileType: text(e.evidenceFile?.contentType ?? null),
      evidenceFileBytes: text(e.evidenceFile?.bytes ?? null),
      evidenceFileSha256: text(e.evidenceFile?.sha256 ?? null),
      evidenceFileAuditSeq: text(e.evidenceFile?.audit.seq ?? null),
      evidenceFileUrl: text(e.evidenceFile?.url ?? null),
      recordedBy: e.recordedBy,
      hasNotice: e.notice !== null,
      noticeVersion: text(e.notice?.version ?? null),
      noticeLanguage: text(e.notice?.language ?? null),
      noticeText: e.notice?.text ?? "",
      hasNoticeText: !!e.notice?.text,
      noticeUrl: e.notice?.url ?? "",
      hasNoticeUrl: !!e.notice?.url,
      noticeSha256: text(e.notice?.sha256 ?? null),
      pageUrl: text(e.evidence.pageUrl),
      userAgent: text(e.evidence.userAgent),
      fullIpAddress: text(e.evidence.fullIpAddress),
      digestKey: e.digest.key,
      digestValue: e.digest.value,
      canonical: e.digest.canonical,
      auditSeq: e.audit.seq,
      auditHash: e.audit.hash,
      auditVerify: proof.verification.auditVerify[i]!,
    })),
    steps: proof.verification.steps.map((step) => ({ step })),
  });
}
