/**
 * Rectification (GDPR Art. 16), the work of a `rectification` request: the person's e-mail address, the one thing the
 * service stores about people as such, is corrected everywhere the service keeps it for the tenant, keyed hashes
 * included, so the old value remains nowhere in the live service (backups: README, "Backups"). Steps (each re-reads
 * what is stored and is safe to repeat; they work from the outcome document's `fromHash`/`toHash`, never from the
 * request's own hash, which the `requests` step moves):
 *
 * 1. `plan`: the field is checked (only `email` is stored; any other field is answered "not stored", corrected: false);
 *    the correct value must be an e-mail address (otherwise the request needs attention); the uploads naming the old
 *    address (keyed hash) are planned and their recipients kept for Art. 19;
 * 2. `uploads`: each planned upload's encrypted recipients, data subjects and first-download address re-encrypted with
 *    the old address replaced (compared by keyed hash of the normalised form), and its keyed hashes moved, in one
 *    conditional write;
 * 3. `consents`: the person's consent subject moves to the new keyed hash (a new document with the same subject id and
 *    key, the address re-encrypted; then the old one is deleted). If the new address has consent records of its own
 *    the request needs attention (merging two histories is the tenant's call);
 * 4. `requests`: every request of the person (this one too) gets the new address (re-encrypted under its own key) and
 *    hash, an open one's marker moves with it; their access and portability packages, and any package holding a copy
 *    of an upload naming the old address, are purged (package-purge.ts; a package is a copy as built, not corrected);
 *    the person's restriction and objection records move to the new hash;
 * 5. `record`: the rectification record (counts and hashes of sorted ids per place) signed by its audit entry
 *    (`subject-request.rectified`); the request completes.
 *
 * Not rewritten: the consent events' `subjectHash`. It is covered by each event's keyed digest, which the audit chain
 * holds (Art. 7(1): the proof of consent); rewriting it would break every proof. It is a keyed hash (HMAC under the
 * tenant's secret), never the address; see README, Known limits.
 */
import { z } from "zod";
import { lookupHash, normaliseEmail } from "../crypto";
import { erasedPlace, type RectificationRecord } from "../domain/erasure-certificate";
import { AppError } from "../errors";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { RequestDoc, StoredRequest } from "../stores/subject-request-store";
import type { UploadDoc } from "../stores/upload-store";
import { sealConsentField, unwrapSubjectKey } from "./consent-keys";
import { markerHasher, openRequestField, sealRequestField, unwrapRequestKey } from "./subject-request-keys";
import { recordAuditOnce } from "./audit-trail";
import { purgePackageNow } from "./package-purge";
import { actorFor, addRecipients, collectRecipients, ensureOutcome, inBatches, requestDetails, signRecord, UPLOAD_CONCURRENCY, updateOutcome, withPlanned } from "./subject-request-outcomes";
import { openMarkerId, registerRequestWork, type WorkOutcome } from "./subject-request-steps";
import { openField, sealField, unwrapUploadKey } from "./upload-keys";

/** The names a rectification may give the e-mail address by. */
const EMAIL_FIELDS = new Set(["email", "e-mail", "emailaddress", "email-address", "email_address", "subjectemail", "address"]);
const isEmailField = (field: string) => EMAIL_FIELDS.has(field.trim().toLowerCase());
const emailSchema = z.email().max(254);

interface Plan {
  fromHash: string;
  toHash: string;
  value: string;
}

/** The plan's hashes and the correct value, from the outcome and the request's details. */
async function planOf(s: Services, req: RequestDoc): Promise<Plan> {
  const doc = await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id);
  const value = (await requestDetails(s, req))?.value?.trim();
  if (!doc?.plan.fromHash || !doc.plan.toHash || !value) throw new AppError("conflict", "the rectification has no plan");
  return { fromHash: doc.plan.fromHash, toHash: doc.plan.toHash, value };
}

export async function planRectification(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const details = await requestDetails(s, req);
  const existing = await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id);
  const field = details?.field ?? "";
  if (!existing && !isEmailField(field)) {
    if (!req.subjectHash) throw new AppError("conflict", "the request's subject hash was erased");
    await ensureOutcome(s, req, "rectification", { fromHash: null, toHash: null });
    const now = s.clock.now().toISOString();
    await signRecord(
      s,
      req,
      "subject-request.rectified",
      (): RectificationRecord => ({
        kind: "rectification",
        format: "safedata.rectification-record.v1",
        tenantId: req.tenantId,
        requestId: req.id,
        receivedAt: req.receivedAt,
        rectifiedAt: now,
        field: field.slice(0, 100),
        corrected: false,
        places: [],
        recipientCount: 0,
        note: "The service stores no such field about people: of a data subject it keeps only the e-mail address (field 'email'). Correct this field where the tenant keeps it.",
      }),
      { corrected: false },
    );
    return { complete: "fulfilled" };
  }
  if (existing && (existing.plan.toHash === null || existing.record)) {
    // Answered "not stored" by an earlier attempt, or done: finish signing it.
    return { next: "record" };
  }
  const value = details?.value?.trim() ?? "";
  if (!emailSchema.safeParse(value).success) return { attention: "the correct value of a rectification of the e-mail address must be an e-mail address" };
  const fromHash = existing?.plan.fromHash ?? req.subjectHash;
  if (!fromHash) throw new AppError("conflict", "the request's subject hash was erased");
  const toHash = lookupHash(await s.keys.lookupSecret(req.tenantId), normaliseEmail(value));
  const doc = await ensureOutcome(s, req, "rectification", { fromHash, toHash });
  const ids = await s.uploads.idsNamingPerson(req.tenantId, fromHash);
  const planned = new Set(doc.plan.ids.uploads ?? []);
  const fresh = ids.filter((id) => !planned.has(id));
  if (fresh.length > 0 || doc.plan.ids.uploads === undefined) {
    await addRecipients(s, req, await collectRecipients(s, req, fresh, [fromHash, toHash]));
    await updateOutcome(s, req.tenantId, req.id, (d) => {
      const all = [...new Set([...(d.plan.ids.uploads ?? []), ...fresh])];
      return all.length === (d.plan.ids.uploads ?? []).length && d.plan.ids.uploads !== undefined ? undefined : withPlanned(d, "uploads", all);
    });
  }
  return { next: "uploads" };
}

/** One upload with the old address replaced (encrypted fields and keyed hashes), in one conditional write. */
async function rectifyUpload(s: Services, tenantId: string, id: string, plan: Plan, secret: Buffer, beforeRead: () => Promise<unknown>): Promise<boolean> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const doc = await s.uploads.get(tenantId, id);
    if (!doc || !doc.personal || !doc.dataKey) return false;
    const names = (h: string) => doc.lookups.subjects.includes(h) || doc.lookups.recipients.includes(h);
    if (!names(plan.fromHash)) return false;
    if (attempt === 0) await beforeRead();
    const key = await unwrapUploadKey(s, doc);
    const isOld = (address: string) => lookupHash(secret, normaliseEmail(address)) === plan.fromHash;
    const fix = (field: "recipients" | "subjects") => {
      const list = JSON.parse(openField(key, tenantId, id, field, doc.personal![field])) as string[];
      return sealField(key, tenantId, id, field, JSON.stringify(list.map((a) => (isOld(a) ? plan.value : a))));
    };
    const notify = doc.personal.notifyEmail ? openField(key, tenantId, id, "notifyEmail", doc.personal.notifyEmail) : null;
    const move = (hashes: string[]) => [...new Set(hashes.map((h) => (h === plan.fromHash ? plan.toHash : h)))];
    const next: UploadDoc = {
      ...withoutMeta(doc),
      personal: {
        ...doc.personal,
        recipients: fix("recipients"),
        subjects: fix("subjects"),
        notifyEmail: notify !== null && isOld(notify) ? sealField(key, tenantId, id, "notifyEmail", plan.value) : doc.personal.notifyEmail,
      },
      lookups: { subjects: move(doc.lookups.subjects), recipients: move(doc.lookups.recipients) },
      updatedAt: s.clock.now().toISOString(),
    };
    if (await s.uploads.replaceIfUnchanged(next, doc._etag)) return true;
  }
  throw new AppError("conflict", "an upload kept changing; the step is tried again");
}

export async function rectifyUploads(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const plan = await planOf(s, req);
  const doc = await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id);
  const secret = await s.keys.lookupSecret(req.tenantId);
  await inBatches(doc?.plan.ids.uploads ?? [], UPLOAD_CONCURRENCY, async (id) => {
    // Its personal fields are decrypted to be rewritten: a read, audited once before it (ids and field names only).
    const audited = () =>
      recordAuditOnce(s, req.tenantId, actorFor(req), "upload.read", { type: "upload", id }, { fields: ["recipients", "subjects", "notifyEmail"], via: "rectification" }, `dsr-rectify-read:${req.id}:${id}`);
    await rectifyUpload(s, req.tenantId, id, plan, secret, audited);
  });
  return { next: (await s.uploads.idsNamingPerson(req.tenantId, plan.fromHash, 1)).length > 0 ? "plan" : "consents" };
}

export async function rectifyConsents(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const plan = await planOf(s, req);
  const old = await s.consents.getSubjectByLookup(req.tenantId, plan.fromHash);
  if (old && plan.fromHash !== plan.toHash) {
    const target = await s.consents.getSubjectByLookup(req.tenantId, plan.toHash);
    if (target && target.subjectId !== old.subjectId) {
      return { attention: "the corrected address has consent records of its own; merging two consent histories is the tenant's decision" };
    }
    if (!target) {
      const key = await unwrapSubjectKey(s, old);
      const moved = { ...withoutMeta(old), id: `subject:${plan.toHash}`, lookup: plan.toHash, email: sealConsentField(key, req.tenantId, old.subjectId, "email", normaliseEmail(plan.value)) };
      await s.consents.createSubject(moved);
    } else if (old.purposes && target.purposes && old.purposes.some((p) => !target.purposes!.includes(p))) {
      // Moved by an earlier attempt, and a purpose joined the old record since: the moved one lists it too.
      const purposes = [...new Set([...target.purposes, ...old.purposes])].sort();
      if (!(await s.consents.replaceSubject({ ...withoutMeta(target), purposes }, target._etag))) throw new AppError("conflict", "the consent subject changed; the step is tried again");
    }
    // Removed as it was copied: changed since (a purpose added by a recording meanwhile), the step runs again and
    // brings the change over first.
    if (!(await s.consents.deleteSubject(req.tenantId, old.id, old._etag))) throw new AppError("conflict", "the consent subject changed; the step is tried again");
    await updateOutcome(s, req.tenantId, req.id, (d) => (d.plan.ids.consentSubjects ? undefined : withPlanned(d, "consentSubjects", [old.subjectId])));
  }
  return { next: "requests" };
}

export async function rectifyRequests(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const plan = await planOf(s, req);
  const ids = await s.subjectRequests.idsOfSubject(req.tenantId, plan.fromHash);
  if (ids.length > 0) await updateOutcome(s, req.tenantId, req.id, (d) => withPlanned(d, "requests", [...(d.plan.ids.requests ?? []), ...ids]));
  const hash = await markerHasher(s, req.tenantId);
  for (const id of ids) {
    for (let attempt = 0; attempt < 8; attempt++) {
      const doc = await s.subjectRequests.get(req.tenantId, id);
      if (!doc || doc.subjectHash !== plan.fromHash) break;
      const key = await unwrapRequestKey(s, doc);
      let next: RequestDoc = { ...withoutMeta(doc), subjectHash: plan.toHash, personal: doc.personal && key ? { ...doc.personal, email: sealRequestField(key, doc.tenantId, doc.id, "email", plan.value) } : doc.personal };
      if (doc.openMarkerId) {
        const details = doc.personal?.details && key ? JSON.parse(openRequestField(key, doc.tenantId, doc.id, "details", doc.personal.details)) : null;
        const newMarker = openMarkerId(hash, plan.toHash, doc.requestType, details);
        next = { ...next, openMarkerId: newMarker };
        // The marker under the new hash first (create-only; a marker there already belongs to another open request, which stays).
        const created = await s.subjectRequests.createMarker({ id: newMarker, tenantId: doc.tenantId, type: "dsr-marker", kind: "open", requestId: doc.id, fingerprint: null, createdAt: s.clock.now().toISOString() });
        if (!created) {
          const m = await s.subjectRequests.getMarker(doc.tenantId, newMarker);
          if (m?.requestId !== doc.id) next = { ...next, openMarkerId: null };
        }
      }
      if (await s.subjectRequests.replace(next, doc._etag)) {
        if (doc.openMarkerId) await s.subjectRequests.deleteMarkerOf(doc.tenantId, doc.openMarkerId, doc.id);
        break;
      }
    }
  }
  // The person's access and portability packages hold the old address (data.json, index.html): they are purged, as
  // are packages holding a copy of an upload naming it (their data.json lists its recipients and data subjects).
  const packages = new Set<string>();
  for (const id of ids) {
    const pkg = await s.packages.get(req.tenantId, id);
    if (pkg && pkg.state !== "purged" && pkg.state !== "open") packages.add(id);
  }
  const planned = (await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id))?.plan.ids.uploads ?? [];
  for (const r of await s.packages.holdingContentOfAny(req.tenantId, planned)) packages.add(r);
  if (packages.size > 0) await updateOutcome(s, req.tenantId, req.id, (d) => withPlanned(d, "packages", [...(d.plan.ids.packages ?? []), ...packages]));
  for (const id of packages) await purgePackageNow(s, req.tenantId, id, { reason: "rectification", actor: actorFor(req), details: { rectificationRequestId: req.id } });
  // The person's restriction and objection move to the new hash.
  const restriction = await s.subjectRequests.outcomes.getRestriction(req.tenantId, plan.fromHash);
  if (restriction) {
    const exists = await s.subjectRequests.outcomes.getRestriction(req.tenantId, plan.toHash);
    if (!exists) await s.subjectRequests.outcomes.createRestriction({ ...withoutMeta(restriction), id: `restriction:${plan.toHash}`, subjectHash: plan.toHash });
    await s.subjectRequests.outcomes.deleteRestriction(req.tenantId, plan.fromHash);
  }
  const objection = await s.subjectRequests.outcomes.getObjection(req.tenantId, plan.fromHash);
  if (objection) {
    const exists = await s.subjectRequests.outcomes.getObjection(req.tenantId, plan.toHash);
    const merged = [...(exists?.purposes ?? []), ...objection.purposes.filter((p) => !exists?.purposes.some((q) => q.purpose === p.purpose))];
    const doc = { ...withoutMeta(objection), id: `objection:${plan.toHash}`, subjectHash: plan.toHash, purposes: merged, updatedAt: s.clock.now().toISOString() };
    if (exists) await s.subjectRequests.outcomes.replaceObjection(doc, exists._etag);
    else await s.subjectRequests.outcomes.createObjection(doc);
    await s.subjectRequests.outcomes.deleteObjection(req.tenantId, plan.fromHash);
  }
  return { next: "record" };
}

export async function recordRectification(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const doc = await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id);
  if (!doc) return { next: "plan" };
  if (doc.plan.fromHash && !doc.record && (await s.uploads.idsNamingPerson(req.tenantId, doc.plan.fromHash, 1)).length > 0) return { next: "plan" };
  const field = (await requestDetails(s, req))?.field ?? "email";
  const now = s.clock.now().toISOString();
  await signRecord(
    s,
    req,
    "subject-request.rectified",
    (d): RectificationRecord => ({
      kind: "rectification",
      format: "safedata.rectification-record.v1",
      tenantId: req.tenantId,
      requestId: req.id,
      receivedAt: req.receivedAt,
      rectifiedAt: now,
      field: field.slice(0, 100),
      corrected: d.plan.toHash !== null,
      places: [
        erasedPlace("uploads", d.plan.ids.uploads ?? []),
        erasedPlace("requests", d.plan.ids.requests ?? []),
        erasedPlace("consent-records", d.plan.ids.consentSubjects ?? []),
        // Purged, not corrected: a package is a copy as it was built; a new request makes a new one.
        erasedPlace("access-packages", d.plan.ids.packages ?? []),
      ],
      recipientCount: d.recipientCount,
      note: null,
    }),
    { uploads: (doc.plan.ids.uploads ?? []).length, requests: (doc.plan.ids.requests ?? []).length },
  );
  return { complete: "fulfilled" };
}

registerRequestWork({
  type: "rectification",
  first: "plan",
  steps: { plan: planRectification, uploads: rectifyUploads, consents: rectifyConsents, requests: rectifyRequests, record: recordRectification },
});
