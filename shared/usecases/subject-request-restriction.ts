/**
 * Restriction of processing (GDPR Art. 18), the work of a `restriction` request, and its lifting.
 *
 * The work (one step, `record`): the person is marked restricted for the tenant (a `dsr-restriction` document keyed by
 * the keyed hash of their address, naming the request), the record for the tenant is stored and signed by its audit
 * entry (`subject-request.restricted`), and the request completes. From then on the person's uploads (those naming them
 * as a data subject) can still be created and their content stored, but are not downloaded: `GET`/`HEAD …/content`
 * answers 403 `processing-restricted` (Art. 18(2): "shall, with the exception of storage, only be processed" with
 * consent, for legal claims, to protect another's rights or for public interest; the service cannot judge those, so it
 * serves none of them and says why).
 *
 * Lifting is its own action (`POST /api/v1/subject-requests/{id}/lift-restriction`): it is recorded on the restriction
 * and audited, and the built-in step `restriction-lift` e-mails the person first (Art. 18(3): "shall be informed by
 * the controller before the restriction of processing is lifted") and only then removes the restriction. A crash
 * between the two sends the same message again (its id is stable) and then lifts; nothing lifts before the e-mail went.
 */
import { purposeList, type RestrictionRecord } from "../domain/erasure-certificate";
import { formatDate } from "../domain/time";
import { AppError } from "../errors";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { RequestDoc, StoredRequest } from "../stores/subject-request-store";
import { recordAudit, recordAuditOnce, type TenantCaller } from "./audit-trail";
import { actorFor, ensureOutcome, mailContext, mailSubject, requestDetails, signRecord } from "./subject-request-outcomes";
import { changeRequest, defineStep, registerRequestWork, withStep, type WorkOutcome } from "./subject-request-steps";

const EFFECT =
  "The person's uploads are kept but not downloaded or otherwise processed (403 processing-restricted) until the restriction is lifted; " +
  "the person is told before it is lifted (Art. 18(2), (3) GDPR).";

/** The work's one step: restrict, record, complete. */
export async function recordRestriction(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const hash = req.subjectHash;
  if (!hash) throw new AppError("conflict", "the request's subject hash was erased");
  await ensureOutcome(s, req, "restriction", { fromHash: null, toHash: null });
  const purposes = purposeList((await requestDetails(s, req))?.purposes);
  const now = s.clock.now().toISOString();
  for (let attempt = 0; attempt < 8; attempt++) {
    const current = await s.subjectRequests.outcomes.getRestriction(req.tenantId, hash);
    if (current?.requestId === req.id) break;
    const doc = { id: `restriction:${hash}`, tenantId: req.tenantId, type: "dsr-restriction" as const, subjectHash: hash, requestId: req.id, since: now, purposes, lift: null };
    // A later request restricts anew: it takes the restriction over (a pending lift of the earlier one is dropped).
    if (current ? await s.subjectRequests.outcomes.replaceRestriction(doc, current._etag) : await s.subjectRequests.outcomes.createRestriction(doc)) break;
  }
  await signRecord(
    s,
    req,
    "subject-request.restricted",
    (): RestrictionRecord => ({
      kind: "restriction",
      format: "safedata.restriction-record.v1",
      tenantId: req.tenantId,
      requestId: req.id,
      receivedAt: req.receivedAt,
      restrictedAt: now,
      purposes,
      effect: EFFECT,
    }),
    { purposes: purposes.length },
  );
  return { complete: "fulfilled" };
}

registerRequestWork({ type: "restriction", first: "record", steps: { record: recordRestriction } });

// --- enforcement ------------------------------------------------------------------------------------------------------

/**
 * Refuses processing of an upload about any of these data subjects (keyed hashes) while one of them is restricted.
 * Errors: processing-restricted (403), naming the article and the way to lift it, never who.
 */
export async function assertNotRestricted(s: Services, tenantId: string, subjectHashes: readonly string[]): Promise<void> {
  if (subjectHashes.length === 0) return;
  const found = await s.subjectRequests.outcomes.restrictionsOf(tenantId, subjectHashes);
  if (found.length > 0) {
    throw new AppError(
      "processing-restricted",
      `a data subject of this upload has restricted its processing (GDPR Art. 18): it is stored but not downloaded until the restriction is lifted ` +
        "(POST /api/v1/subject-requests/{id}/lift-restriction on the restriction request; this answer names neither the person nor the request, which would say who)",
    );
  }
}

// --- lifting ----------------------------------------------------------------------------------------------------------

export interface RestrictionState {
  requestId: string;
  restricted: boolean;
  liftRequestedAt: string | null;
  personToldAt: string | null;
}

/**
 * POST …/lift-restriction: the tenant lifts the restriction this request made. The person is e-mailed first (Art.
 * 18(3)); the restriction ends once they were (moments later, by the request's `restriction-lift` step). Asking again
 * while it is being lifted answers the same. Errors: not-found; conflict (not a restriction request, not completed,
 * or the restriction is not this request's any more: lifted already or taken over by a later request).
 */
export async function liftRestriction(s: Services, caller: TenantCaller, id: string): Promise<RestrictionState> {
  const req = await s.subjectRequests.get(caller.tenantId, id);
  if (!req) throw new AppError("not-found", "no subject request with this id");
  if (req.requestType !== "restriction") throw new AppError("conflict", "only a restriction request's restriction can be lifted");
  if (!req.subjectHash) throw new AppError("conflict", "the request's fields were erased");
  const now = s.clock.now().toISOString();
  let lifted = false;
  for (let attempt = 0; attempt < 8; attempt++) {
    const current = await s.subjectRequests.outcomes.getRestriction(caller.tenantId, req.subjectHash);
    if (!current || current.requestId !== id) throw new AppError("conflict", "this request's restriction is not in force (lifted already, or a later request restricted the person anew)");
    if (current.lift) break;
    if (await s.subjectRequests.outcomes.replaceRestriction({ ...withoutMeta(current), lift: { requestedAt: now, by: caller.actor, noticeSentAt: null } }, current._etag)) {
      lifted = true;
      break;
    }
  }
  if (lifted) await recordAudit(s, caller.tenantId, caller, "subject-request.restriction-lift-requested", { type: "subject-request", id }, {});
  await changeRequest(s, caller.tenantId, id, (fresh) => (fresh.steps.some((st) => st.name === "restriction-lift") ? undefined : withStep(withoutMeta(fresh), "restriction-lift", s.clock.now())));
  return restrictionState(s, caller.tenantId, id);
}

export async function restrictionState(s: Services, tenantId: string, id: string): Promise<RestrictionState> {
  const req = await s.subjectRequests.get(tenantId, id);
  const current = req?.subjectHash ? await s.subjectRequests.outcomes.getRestriction(tenantId, req.subjectHash) : undefined;
  const mine = current?.requestId === id ? current : undefined;
  return { requestId: id, restricted: mine !== undefined, liftRequestedAt: mine?.lift?.requestedAt ?? null, personToldAt: mine?.lift?.noticeSentAt ?? null };
}

/** The `restriction-lift` step: tell the person, then lift. Re-reads the restriction; does nothing when it is not being lifted. */
async function runLift(s: Services, req: RequestDoc): Promise<void> {
  const fresh = await s.subjectRequests.get(req.tenantId, req.id);
  if (!fresh?.subjectHash) return;
  const hash = fresh.subjectHash;
  const current = await s.subjectRequests.outcomes.getRestriction(fresh.tenantId, hash);
  if (!current || current.requestId !== fresh.id || !current.lift) return;
  if (!current.lift.noticeSentAt) {
    const c = await mailContext(s, fresh.tenantId);
    const sent = await mailSubject(s, fresh, "dsr-restriction-lifting", "restriction-lifting", { restrictedDate: formatDate(new Date(current.since), c.language, c.timeZone) });
    if (!sent) throw new AppError("conflict", "the person cannot be told (the request's address was erased); the restriction stays");
    const told = { ...withoutMeta(current), lift: { ...current.lift, noticeSentAt: s.clock.now().toISOString() } };
    if (!(await s.subjectRequests.outcomes.replaceRestriction(told, current._etag))) throw new AppError("conflict", "the restriction changed; the step is tried again");
  }
  const again = await s.subjectRequests.outcomes.getRestriction(fresh.tenantId, hash);
  if (again && again.requestId === fresh.id && again.lift?.noticeSentAt) {
    if (!(await s.subjectRequests.outcomes.deleteRestriction(fresh.tenantId, hash, again._etag))) throw new AppError("conflict", "the restriction changed; the step is tried again");
  }
  if (!(await s.subjectRequests.outcomes.getRestriction(fresh.tenantId, hash))) {
    await recordAuditOnce(s, fresh.tenantId, actorFor(fresh), "subject-request.restriction-lifted", { type: "subject-request", id: fresh.id }, { personTold: true }, `dsr-restriction-lifted:${fresh.id}`);
  }
}

defineStep("restriction-lift", runLift);
