/**
 * Objection (GDPR Art. 21) and consent withdrawal (Art. 7(3)): the work of `objection` and `withdraw-consent` requests.
 *
 * Objection concerns processing on legitimate interests or a public task (Art. 6(1)(e), (f)). Step `record`: the
 * purposes named are added to the person's objection record (a `dsr-objection` document keyed by the keyed hash of the
 * address; no purposes named: every purpose, `*`), the record for the tenant says for each purpose what it must stop
 * (direct marketing: absolutely, Art. 21(3); otherwise unless it demonstrates compelling legitimate grounds, Art.
 * 21(1)) and is signed by its audit entry (`subject-request.objection-recorded`). From then on a new upload naming the
 * person as a data subject and declaring one of those purposes (`purpose` or `consentPurpose`) is refused with 403
 * `processing-restricted`. Step `confirm` e-mails the person; the request completes.
 *
 * Withdraw-consent. Step `withdraw`: for each purpose named that is a consent purpose of the tenant (none named, or
 * `all`: every purpose), a `withdrawn` event is recorded through the consent register's own path (`recordEvents` in
 * consents.ts: the subject found or created, the event with its keyed digest and audit entry, the evidence clock
 * moved), with an event id derived from the request and the purpose, so a repeated step records each once. Purposes
 * that are not the tenant's are listed in the record. Then the record (`subject-request.consent-withdrawn`), and step
 * `confirm` e-mails the person; the request completes.
 */
import { derivedConsentEventId, ALL_PURPOSES } from "../domain/consent";
import { objectionDuty, purposeList, withdrawalDuty, type ObjectionRecord } from "../domain/erasure-certificate";
import { AppError } from "../errors";
import type { Services } from "../services";
import type { StoredRequest } from "../stores/subject-request-store";
import { MAX_PURPOSES, recordEvents, type EventFacts } from "./consents";
import { actorFor, ensureOutcome, mailContext, mailSubject, requestDetails, requestEmail, signRecord } from "./subject-request-outcomes";
import { recordAuditOnce } from "./audit-trail";
import { tenantContactEmail } from "./tenants";
import { DSR_TYPE_LABELS } from "../domain/subject-requests";
import { formatDate } from "../domain/time";
import { registerRequestWork, type WorkOutcome } from "./subject-request-steps";

/** What a withdrawal recorded for a request carries of the consent register's web-page fields: nothing. */
const NO_SIGNALS = { location: null, tcf: null, gpp: null };

/** The purpose an objection without named purposes covers: every one. */
export const EVERY_PURPOSE = "*";

const purposeKey = (p: string) => p.trim().toLowerCase();

export async function recordObjection(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const hash = req.subjectHash;
  if (!hash) throw new AppError("conflict", "the request's subject hash was erased");
  await ensureOutcome(s, req, "objection", { fromHash: null, toHash: null });
  const named = purposeList((await requestDetails(s, req))?.purposes);
  const purposes = named.length > 0 ? named : [EVERY_PURPOSE];
  // Purposes that are the tenant's consent purposes: processing on consent is not objected to but withdrawn (Art. 7(3)).
  const consentKeys = new Set((await s.consents.listPurposes(req.tenantId, MAX_PURPOSES)).map((p) => purposeKey(p.key)));
  const now = s.clock.now().toISOString();
  for (let attempt = 0; attempt < 8; attempt++) {
    const current = await s.subjectRequests.outcomes.getObjection(req.tenantId, hash);
    const have = new Set((current?.purposes ?? []).map((p) => purposeKey(p.purpose)));
    const added = purposes.filter((p) => !have.has(purposeKey(p))).map((purpose) => ({ purpose, requestId: req.id, since: now }));
    if (current && added.length === 0) break;
    const doc = { id: `objection:${hash}`, tenantId: req.tenantId, type: "dsr-objection" as const, subjectHash: hash, purposes: [...(current?.purposes ?? []), ...added], updatedAt: now };
    if (current ? await s.subjectRequests.outcomes.replaceObjection(doc, current._etag) : await s.subjectRequests.outcomes.createObjection(doc)) break;
  }
  await signRecord(
    s,
    req,
    "subject-request.objection-recorded",
    (): ObjectionRecord => ({
      kind: "objection",
      format: "safedata.objection-record.v1",
      tenantId: req.tenantId,
      requestId: req.id,
      receivedAt: req.receivedAt,
      recordedAt: now,
      purposes: purposes.map((p) => ({
        purpose: p,
        mustStop:
          p === EVERY_PURPOSE
            ? objectionDuty("every purpose on legitimate interests or a public task")
            : consentKeys.has(purposeKey(p))
              ? `${objectionDuty(p)} '${p}' is one of your consent purposes: processing that rests on consent is ended by its withdrawal (Art. 7(3) GDPR), not by an objection; ask the person whether they withdraw it (a withdraw-consent request records that), and until then new uploads about them for it are refused.`
              : objectionDuty(p),
      })),
      unknownPurposes: [],
    }),
    { purposes: purposes.length },
  );
  return { next: "confirm" };
}

async function confirm(s: Services, req: StoredRequest, template: string, notice: string): Promise<WorkOutcome> {
  const doc = await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id);
  const record = doc?.record as { purposes?: Array<{ purpose: string; mustStop: string }> } | null | undefined;
  const purposes = (record?.purposes ?? []).map((p) => p.purpose).filter((p) => p !== EVERY_PURPOSE);
  await mailSubject(s, req, template, notice, { purposes: purposes.map((purpose) => ({ purpose })), hasPurposes: purposes.length > 0, everyPurpose: purposes.length === 0 });
  await tellTenant(s, req, record?.purposes ?? []);
  return { complete: "fulfilled" };
}

/**
 * E-mails the tenant's contact what it must stop, per purpose (the record's `mustStop`), once (a stable message id
 * and a keyed audit entry), so the controller is told actively, not only through the record and webhook ids. Nothing
 * about the person: the request id only. No contact (or an offboarded tenant): nothing is sent.
 */
async function tellTenant(s: Services, req: StoredRequest, purposes: ReadonlyArray<{ purpose: string; mustStop: string }>): Promise<void> {
  if (purposes.length === 0) return;
  const tenant = await s.tenants.get(req.tenantId);
  const to = tenant && !tenant.offboardedAt ? await tenantContactEmail(s, tenant) : undefined;
  if (!to) return;
  const c = await mailContext(s, req.tenantId);
  const message = s.templates.render("dsr-tenant-must-stop", c.language, {
    requestId: req.id,
    requestType: DSR_TYPE_LABELS[c.language][req.requestType],
    receivedDate: formatDate(new Date(req.receivedAt), c.language, c.timeZone),
    purposes: purposes.map((p) => ({ purpose: p.purpose === EVERY_PURPOSE ? (c.language === "da" ? "alle formål" : "every purpose") : p.purpose, mustStop: p.mustStop })),
    apiPath: `/api/v1/subject-requests/${req.id}/certificate`,
  });
  await s.email.send({ messageId: `dsr-tenant-must-stop-${req.id}`, to: [to], ...message });
  await recordAuditOnce(s, req.tenantId, actorFor(req), "subject-request.notified", { type: "subject-request", id: req.id }, { to: "tenant", notice: "must-stop" }, `dsr-notice:${req.id}:must-stop`);
}

registerRequestWork({
  type: "objection",
  first: "record",
  steps: { record: recordObjection, confirm: (s, req) => confirm(s, req, "dsr-objection-confirmed", "objection-confirmed") },
});

/**
 * Refuses a new upload that declares one of `purposes` while a data subject of it (keyed hashes) objected to that
 * purpose (or to every purpose). Errors: processing-restricted (403), naming the purpose and the article, never who.
 */
export async function assertNoObjection(s: Services, tenantId: string, purposes: readonly string[], subjectHashes: readonly string[]): Promise<void> {
  const declared = purposes.filter((p) => p.trim().length > 0);
  if (declared.length === 0 || subjectHashes.length === 0) return;
  for (const doc of await s.subjectRequests.outcomes.objectionsOf(tenantId, subjectHashes)) {
    for (const o of doc.purposes) {
      const hit = o.purpose === EVERY_PURPOSE ? declared[0] : declared.find((p) => purposeKey(p) === purposeKey(o.purpose));
      if (hit !== undefined) {
        throw new AppError("processing-restricted", `a data subject of this upload objected to processing for the purpose '${hit}' (GDPR Art. 21): no new uploads about them are accepted for it`);
      }
    }
  }
}

// --- withdraw-consent -------------------------------------------------------------------------------------------------

export async function withdrawForRequest(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const hash = req.subjectHash;
  if (!hash) throw new AppError("conflict", "the request's subject hash was erased");
  await ensureOutcome(s, req, "withdraw-consent", { fromHash: null, toHash: null });
  {
    // Every part is safe to repeat: events have ids derived from the request and purpose; the first record stands.
    const email = await requestEmail(s, req);
    if (!email) throw new AppError("conflict", "the request's address was erased");
    const named = purposeList((await requestDetails(s, req))?.purposes);
    const all = await s.consents.listPurposes(req.tenantId, MAX_PURPOSES);
    const every = named.length === 0 || named.includes(ALL_PURPOSES);
    const known = every ? all : all.filter((p) => named.includes(p.key));
    const unknown = every ? [] : named.filter((n) => !all.some((p) => p.key === n));
    await withdrawConsents(s, req, email, known.map((p) => p.key));
    const now = s.clock.now().toISOString();
    await signRecord(
      s,
      req,
      "subject-request.consent-withdrawn",
      (): ObjectionRecord => ({
        kind: "withdraw-consent",
        format: "safedata.consent-withdrawal-record.v1",
        tenantId: req.tenantId,
        requestId: req.id,
        receivedAt: req.receivedAt,
        recordedAt: now,
        purposes: known.map((p) => ({ purpose: p.key, mustStop: withdrawalDuty() })),
        unknownPurposes: unknown,
      }),
      { purposes: known.length, unknownPurposes: unknown.length },
    );
  }
  return { next: "confirm" };
}

/**
 * Records a `withdrawn` event for each of these consent purposes of the tenant, for the person of `req` (its address
 * `email`), through the consent register's own recording (`recordEvents`), dated when the tenant received the
 * request, each with an id derived from the request and purpose, so a repeated call records each once. Used by a
 * withdraw-consent request (Art. 7(3)) and by an erasure, which withdraws consents in force first (Art. 17(1)(b)).
 */
export async function withdrawConsents(s: Services, req: StoredRequest, email: string, purposeKeys: readonly string[]): Promise<void> {
  if (purposeKeys.length === 0) return;
  const tenant = await s.tenants.get(req.tenantId);
  if (!tenant) throw new AppError("conflict", "the tenant is gone");
  const all = await s.consents.listPurposes(req.tenantId, MAX_PURPOSES);
  const facts: EventFacts[] = [];
  for (const key of purposeKeys) {
    const p = all.find((x) => x.key === key);
    if (!p) continue;
    const notice = p.lastNoticeVersion > 0 ? (await s.consents.listNotices(req.tenantId, p.key)).at(-1) : undefined;
    facts.push({
      purposeKey: p.key,
      noticeVersion: notice?.version ?? null,
      noticeSha256: notice?.sha256 ?? null,
      decision: "withdrawn",
      method: "api",
      requestOrigin: "api",
      propertyId: null,
      language: null,
      // The person's wish dates from when the tenant received it.
      givenAt: req.receivedAt,
      ipAddress: null,
      userAgent: null,
      pageUrl: null,
      gpc: null,
      // No place, no IAB signals: the wish reached the tenant, not a web page.
      ...NO_SIGNALS,
    });
  }
  if (facts.length === 0) return;
  await recordEvents(
    s,
    req.tenantId,
    { email },
    facts,
    { ...actorFor(req), linkId: null, kekVersion: tenant.kekVersion },
    facts.map((f) => derivedConsentEventId(`dsr:${req.id}:${f.purposeKey}`)),
  );
}

registerRequestWork({
  type: "withdraw-consent",
  first: "withdraw",
  steps: { withdraw: withdrawForRequest, confirm: (s, req) => confirm(s, req, "dsr-consent-withdrawn", "consent-withdrawn") },
});
