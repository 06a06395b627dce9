/**
 * Erasure (GDPR Art. 17), the work of an `erasure` request, in four steps (registerRequestWork; each re-reads what is
 * stored and is safe to repeat, so a crash between any two, or inside one, finishes once):
 *
 * 1. `plan`: the ids of the tenant's uploads that name the person (by keyed hash) as a data subject or a recipient,
 *    added to the request's outcome document; the recipients of those uploads are read (decrypted, audited once) and
 *    kept encrypted under the request's key, so the tenant can tell them (Art. 19) after the uploads are gone; the
 *    access and portability packages (of any person's request) holding a copy of their content are noted: each
 *    upload's deletion purges them, and the certificate counts them;
 * 2. `uploads`: each planned upload deleted as a sender's deletion is (shared/usecases/upload-deletion.ts: the data key
 *    destroyed first, then the blobs, the audit entry, the tombstone) with reason `subject-request`; uploads naming the
 *    person that appeared meanwhile send the work back to `plan`;
 * 3. `records`: the person's other requests that are closed have their fields erased now (key destroyed, fields and
 *    keyed hashes cleared, markers removed; an open one is kept and listed), their access and portability packages
 *    purged; the person's restriction and objection records go; consent histories are kept on Art. 17(3)(e) for their
 *    evidence period (listed with their end), unless the request says `consentProof: "erase"`: then each is erased now
 *    as the retention sweep would at its end (consent-retention.ts `eraseHistoryOnRequest`), the subject with the last;
 * 4. `certificate`: the erasure certificate (shared/domain/erasure-certificate.ts) stored, its audit entry
 *    (`subject-request.erasure-certified`, naming its SHA-256) written once and its position noted; the request completes.
 *
 * Webhook deliveries hold ids only (never an address), and the audit chain ids and keyed digests: both are listed as
 * kept without personal data. The request itself keeps the address (encrypted) until the closed-request retention
 * erases it: the record that the request was answered (Art. 5(2)).
 */
import { erasureCertificate, keptItem, type KeptItem } from "../domain/erasure-certificate";
import { FINAL_DSR_STATUSES, isFinalStatus } from "../domain/subject-requests";
import { RETENTION_CLASSES } from "../domain/retention";
import { AppError } from "../errors";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { OutcomeDoc } from "../stores/subject-outcome-store";
import type { RequestDoc, StoredRequest } from "../stores/subject-request-store";
import { recordAuditOnce } from "./audit-trail";
import { eraseHistoryOnRequest } from "./consent-retention";
import { purgePackageNow } from "./package-purge";
import { stripClosedRequest } from "./subject-requests";
import { deleteUpload } from "./upload-deletion";
import { actorFor, addRecipients, collectRecipients, ensureOutcome, inBatches, requestDetails, requestEmail, signRecord, UPLOAD_CONCURRENCY, updateOutcome, withPlanned } from "./subject-request-outcomes";
import { withdrawConsents } from "./subject-request-objection";
import { registerRequestWork, type WorkOutcome } from "./subject-request-steps";

const requireHash = (req: RequestDoc): string => {
  if (!req.subjectHash) throw new AppError("conflict", "the request's subject hash was erased");
  return req.subjectHash;
};

/** Step 1: plan the uploads (adding those not planned yet) and keep their recipients. */
export async function planErasure(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const hash = requireHash(req);
  const doc = await ensureOutcome(s, req, "erasure", { fromHash: hash, toHash: null });
  const ids = await s.uploads.idsNamingPerson(req.tenantId, hash);
  const planned = new Set(doc.plan.ids.uploads ?? []);
  const fresh = ids.filter((id) => !planned.has(id));
  if (fresh.length > 0 || doc.plan.ids.uploads === undefined) {
    // Recipients first: once planned, an upload may be deleted by the next step at any time.
    await addRecipients(s, req, await collectRecipients(s, req, fresh, [hash]));
    // Packages (of anyone's requests) holding a copy of these uploads' content: each upload's deletion purges them
    // (upload-deletion.ts); they are noted here for the certificate.
    const holding = await s.packages.holdingContentOfAny(req.tenantId, fresh);
    await updateOutcome(s, req.tenantId, req.id, (d) => {
      const all = [...new Set([...(d.plan.ids.uploads ?? []), ...fresh])];
      const copies = [...new Set([...(d.plan.ids.contentCopies ?? []), ...holding])];
      if (all.length === (d.plan.ids.uploads ?? []).length && d.plan.ids.uploads !== undefined && copies.length === (d.plan.ids.contentCopies ?? []).length) return undefined;
      return withPlanned(withPlanned(d, "uploads", all), "contentCopies", copies);
    });
  }
  return { next: "uploads" };
}

/** Step 2: delete every planned upload (crypto-shred first) with reason subject-request. */
export async function eraseUploads(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const hash = requireHash(req);
  const doc = await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id);
  if (!doc) return { next: "plan" };
  await inBatches(doc.plan.ids.uploads ?? [], UPLOAD_CONCURRENCY, async (id) => {
    const outcome = await deleteUpload(s, req.tenantId, id, "subject-request", actorFor(req));
    // "in-progress": its key is destroyed and another worker (or the next sweep) finishes it; "busy": try again.
    if (outcome === "busy") throw new AppError("conflict", "an upload kept changing; the step is tried again");
  });
  // Uploads about the person made while this ran: plan them too.
  const left = await s.uploads.idsNamingPerson(req.tenantId, hash, 1);
  return { next: left.length > 0 ? "plan" : "records" };
}

/** Step 3: the person's other requests, restriction and objection records. */
export async function eraseRecords(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const hash = requireHash(req);
  let doc = await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id);
  if (!doc) return { next: "plan" };
  if (doc.plan.ids.requests === undefined) {
    // What is erased here is fixed before anything is: a resumed step works through the same lists.
    const others = (await s.subjectRequests.idsOfSubject(req.tenantId, hash)).filter((id) => id !== req.id);
    const closed: string[] = [];
    const open: string[] = [];
    for (const id of others) {
      const r = await s.subjectRequests.get(req.tenantId, id);
      if (!r) continue;
      (isFinalStatus(r.status) ? closed : open).push(id);
    }
    // The person's access and portability packages (part 2), of open and closed requests alike.
    const packages: string[] = [];
    for (const id of others) {
      const pkg = await s.packages.get(req.tenantId, id);
      if (pkg && pkg.state !== "purged") packages.push(id);
    }
    // Consent proof: kept on Art. 17(3)(e) unless the tenant asked for it to go too (details.consentProof "erase").
    const eraseConsent = (await requestDetails(s, req))?.consentProof === "erase";
    const subject = eraseConsent ? await s.consents.getSubjectByLookup(req.tenantId, hash) : undefined;
    const histories = subject ? (await s.consents.liveClocksOfSubject(req.tenantId, subject.subjectId)).map((c) => c.id) : [];
    // Consents in force are withdrawn by the erasure (Art. 17(1)(b): the person withdraws the consent the processing
    // rests on) before their proof is kept or erased.
    const inForceOf = await s.consents.getSubjectByLookup(req.tenantId, hash);
    const inForce = inForceOf ? (await s.consents.liveClocksOfSubject(req.tenantId, inForceOf.subjectId)).filter((c) => c.latest?.decision === "granted").map((c) => c.purposeKey) : [];
    const restriction = await s.subjectRequests.outcomes.getRestriction(req.tenantId, hash);
    const objection = await s.subjectRequests.outcomes.getObjection(req.tenantId, hash);
    const planned: Record<string, string[]> = {
      requests: closed,
      openRequests: open,
      restrictions: restriction ? [restriction.id] : [],
      // Objections are not erased: they are reduced to a suppression record (keyed hash and purposes), kept.
      objections: [],
      suppressions: objection ? [objection.id] : [],
      consentsWithdrawn: inForce,
      packages,
      consentHistories: histories,
    };
    doc = await updateOutcome(s, req.tenantId, req.id, (d) =>
      d.plan.ids.requests !== undefined ? undefined : Object.entries(planned).reduce((acc, [place, ids]) => withPlanned(acc, place, ids), d as OutcomeDoc),
    );
  }
  if ((doc.plan.ids.consentsWithdrawn ?? []).length > 0) {
    const email = await requestEmail(s, req);
    if (!email) throw new AppError("conflict", "the request's address was erased");
    await withdrawConsents(s, req, email, doc.plan.ids.consentsWithdrawn ?? []);
  }
  for (const id of doc.plan.ids.consentHistories ?? []) {
    if ((await eraseHistoryOnRequest(s, req.tenantId, id, req.id, actorFor(req))) === "busy") throw new AppError("conflict", "a consent history is being changed; the step is tried again");
  }
  for (const id of doc.plan.ids.packages ?? []) await erasePackage(s, req, id);
  for (const id of doc.plan.ids.requests ?? []) await eraseRequestFields(s, req, id);
  if ((doc.plan.ids.restrictions ?? []).length > 0) await s.subjectRequests.outcomes.deleteRestriction(req.tenantId, hash);
  if ((doc.plan.ids.objections ?? []).length > 0) await s.subjectRequests.outcomes.deleteObjection(req.tenantId, hash);
  if ((doc.plan.ids.suppressions ?? []).length > 0) await suppressObjection(s, req.tenantId, hash);
  return { next: "certificate" };
}

/**
 * Reduces the person's objection record to a suppression record (Art. 21(3), 17(3)(b)): the keyed hash and the
 * purposes only (which request recorded each, and since when, removed), so a new upload about the person for those
 * purposes is still refused after the erasure. Safe to repeat.
 */
async function suppressObjection(s: Services, tenantId: string, hash: string): Promise<void> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const doc = await s.subjectRequests.outcomes.getObjection(tenantId, hash);
    if (!doc || (doc.suppressedAt && doc.purposes.every((p) => p.requestId === null && p.since === null))) return;
    const now = s.clock.now().toISOString();
    const next = { ...withoutMeta(doc), purposes: doc.purposes.map((p) => ({ purpose: p.purpose, requestId: null, since: null })), suppressedAt: doc.suppressedAt ?? now, updatedAt: now };
    if (await s.subjectRequests.outcomes.replaceObjection(next, doc._etag)) return;
  }
  throw new AppError("conflict", "the person's objection record kept changing; the step is tried again");
}

/** Erases an access or portability package of the person now (package-purge.ts), for the person's erasure. */
async function erasePackage(s: Services, by: RequestDoc, requestId: string): Promise<void> {
  if ((await purgePackageNow(s, by.tenantId, requestId, { reason: "subject-request", actor: actorFor(by), details: { erasureRequestId: by.id } })) === "busy") {
    throw new AppError("conflict", "a package of the person is being purged by another worker; the step is tried again");
  }
}

/**
 * Erases a closed request's personal fields now, for the person's erasure (its markers go, its data key is destroyed
 * and its fields and keyed hashes cleared in one conditional write; the anonymous record stays). Audited once.
 */
async function eraseRequestFields(s: Services, by: RequestDoc, id: string): Promise<void> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const doc = await s.subjectRequests.get(by.tenantId, id);
    if (!doc || doc.erasedAt || !(FINAL_DSR_STATUSES as readonly string[]).includes(doc.status)) break;
    if (await stripClosedRequest(s, doc)) break;
  }
  const after = await s.subjectRequests.get(by.tenantId, id);
  if (after?.erasedAt) {
    await recordAuditOnce(s, by.tenantId, actorFor(by), "subject-request.erased", { type: "subject-request", id }, { reason: "subject-request", erasureRequestId: by.id }, `subject-request.erased:${id}`);
  }
}

/** Step 4: the certificate, signed by its audit entry; the request completes. */
export async function certifyErasure(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const hash = requireHash(req);
  const doc = await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id);
  if (!doc) return { next: "plan" };
  if (!doc.record && (await s.uploads.idsNamingPerson(req.tenantId, hash, 1)).length > 0) return { next: "plan" };
  const kept = doc.record ? [] : await keptItems(s, req, hash, doc.plan.ids.openRequests ?? [], (doc.plan.ids.uploads ?? []).length, doc.plan.ids.consentsWithdrawn ?? []);
  const signed = await signRecord(
    s,
    req,
    "subject-request.erasure-certified",
    (d) =>
      erasureCertificate({
        tenantId: req.tenantId,
        requestId: req.id,
        receivedAt: req.receivedAt,
        erasedAt: s.clock.now().toISOString(),
        erased: {
          uploads: d.plan.ids.uploads ?? [],
          requests: d.plan.ids.requests ?? [],
          restrictions: d.plan.ids.restrictions ?? [],
          objections: d.plan.ids.objections ?? [],
          // The person's own packages and every package that held a copy of an erased upload's content.
          "access-packages": [...(d.plan.ids.packages ?? []), ...(d.plan.ids.contentCopies ?? [])],
          "consent-records": d.plan.ids.consentHistories ?? [],
        },
        kept,
        recipientCount: d.recipientCount,
        consentsWithdrawn: d.plan.ids.consentsWithdrawn ?? [],
      }),
    { uploads: (doc.plan.ids.uploads ?? []).length, requests: (doc.plan.ids.requests ?? []).length, kept: kept.length },
  );
  if (!signed.audit) throw new AppError("conflict", "the certificate is not signed yet");
  return { complete: "fulfilled" };
}

/** What is kept, and why: consent histories (Art. 17(3)(e)), open requests, this request, the audit chain, tombstones. */
async function keptItems(s: Services, req: RequestDoc, hash: string, openRequests: readonly string[], uploads: number, withdrawn: readonly string[]): Promise<KeptItem[]> {
  const kept: KeptItem[] = [];
  const subject = await s.consents.getSubjectByLookup(req.tenantId, hash);
  if (subject) {
    for (const clock of await s.consents.liveClocksOfSubject(req.tenantId, subject.subjectId)) {
      // The proof of a consent, no longer in force: withdrawn by this erasure (listed in consentsWithdrawn) or before.
      const item = keptItem("consent-history", `${subject.subjectId}:${clock.purposeKey}`, "legal-claims-consent-proof", clock.evidenceUntil, clock.events);
      kept.push({ ...item, groundText: `${item.groundText}. ${withdrawn.includes(clock.purposeKey) ? "The consent was in force and was withdrawn by this erasure (Art. 17(1)(b)) before its proof was kept." : `Its latest decision: ${clock.latest?.decision ?? "none"}; not in force.`}` });
    }
  }
  const objection = await s.subjectRequests.outcomes.getObjection(req.tenantId, hash);
  // Named without the keyed hash its record is stored under.
  if (objection) kept.push(keptItem("objection-suppression", "objections", "objection-suppression", null, objection.purposes.length));
  kept.push(keptItem("webhook-deliveries", "webhook-deliveries", "webhook-deliveries", null, 0));
  for (const id of openRequests) kept.push(keptItem("request", id, "open-request", null, 1));
  const closedDue = RETENTION_CLASSES["closed-request"].dueAt({ closedAt: s.clock.now().toISOString() }, s.settings);
  kept.push(keptItem("request", req.id, "accountability-request-record", closedDue ? closedDue.toISOString() : null, 1));
  kept.push(keptItem("audit-chain", "audit-chain", "audit-chain", null, 0));
  if (uploads > 0) kept.push(keptItem("tombstones", "uploads", "tombstones", null, uploads));
  return kept;
}

registerRequestWork({
  type: "erasure",
  first: "plan",
  steps: { plan: planErasure, uploads: eraseUploads, records: eraseRecords, certificate: certifyErasure },
});
