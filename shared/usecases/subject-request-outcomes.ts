/**
 * What the request types of part 3 (erasure, rectification, restriction, objection, consent withdrawal) share: their
 * outcome document (the work's plan, the record for the tenant signed by its audit entry, the recipients to tell under
 * Art. 19), the e-mails they send the person, and the tenant's view of the record (JSON or a printable page) with
 * `recipients-notified`. The types' work is in subject-request-erasure.ts, -rectification.ts, -restriction.ts and
 * -objection.ts; each registers itself with `registerRequestWork` (subject-request-steps.ts) and follows its rules:
 * every step re-reads what is stored, keys what it sends, writes each audit entry once, so a crash between any two
 * steps (or inside one) is finished by the next attempt without doing anything twice.
 *
 * The record itself is non-personal (ids, counts, hashes, purposes, dates: shared/domain/erasure-certificate.ts). It is
 * stored first, then its audit entry names its SHA-256, then the entry's position and hash are noted on it: the
 * certificate is "signed" by the chain position that records it, and a record stored once never changes.
 */
import { inParallel } from "./in-parallel";
import { createHash } from "node:crypto";
import { decryptField, encryptField, fieldAssociatedData, lookupHash, normaliseEmail } from "../crypto";
import { recordSha256, type OutcomeRecord } from "../domain/erasure-certificate";
import type { AuditAction } from "../domain/audit-chain";
import { DEFAULT_LANGUAGE, type Language } from "../domain/language";
import { DSR_TYPE_LABELS, type DsrDetails } from "../domain/subject-requests";
import { DEFAULT_TIME_ZONE } from "../domain/tenant";
import { formatDate, formatInstant } from "../domain/time";
import { AppError } from "../errors";
import type { PlainView } from "../email/templates";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { RequestDoc } from "../stores/subject-request-store";
import type { OutcomeDoc, OutcomeKind, StoredOutcome } from "../stores/subject-outcome-store";
import { outcomeId } from "../stores/subject-outcome-store";
import { recordAudit, recordAuditOnce, type Actor, type TenantCaller } from "./audit-trail";
import { openRequestField, unwrapRequestKey } from "./subject-request-keys";
import { openField, unwrapUploadKey } from "./upload-keys";

/** Who the work of part 3 acts as, naming the request (its audit entries carry the request id). */
export const actorFor = (req: Pick<RequestDoc, "id">): Actor => ({ actor: "system:subject-requests", requestId: req.id });

/** How many uploads a step works on at once. */
export const UPLOAD_CONCURRENCY = 16;

/** Runs `fn` over `items`, `concurrency` at a time; the first failure is thrown after the running ones settle. */
export async function inBatches<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  await inParallel(items, concurrency, (item) => fn(item));
}

// --- the outcome document -------------------------------------------------------------------------------------------

/** The request's outcome document, created empty for `kind` when it does not exist yet. */
export async function ensureOutcome(s: Services, req: RequestDoc, kind: OutcomeKind, hashes: { fromHash: string | null; toHash: string | null }): Promise<StoredOutcome> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const found = await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id);
    if (found) return found;
    const now = s.clock.now().toISOString();
    const doc: OutcomeDoc = {
      id: outcomeId(req.id),
      tenantId: req.tenantId,
      type: "dsr-outcome",
      kind,
      requestId: req.id,
      createdAt: now,
      updatedAt: now,
      plan: { ids: {}, fromHash: hashes.fromHash, toHash: hashes.toHash },
      recipients: null,
      recipientCount: 0,
      record: null,
      recordSha256: null,
      audit: null,
      recipientsNotified: null,
    };
    await s.subjectRequests.outcomes.createOutcome(doc);
  }
  throw new AppError("conflict", "the request's outcome is being written by another worker");
}

/**
 * Reads the outcome and writes `change(doc)` if unchanged meanwhile, retrying on a fresh read. `change` returns the next
 * document, or undefined to leave it. Returns the stored document as it is afterwards.
 */
export async function updateOutcome(s: Services, tenantId: string, requestId: string, change: (doc: StoredOutcome) => OutcomeDoc | undefined): Promise<StoredOutcome> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const doc = await s.subjectRequests.outcomes.getOutcome(tenantId, requestId);
    if (!doc) throw new AppError("not-found", "the request has no outcome");
    const next = change(doc);
    if (!next) return doc;
    if (await s.subjectRequests.outcomes.replaceOutcome({ ...next, updatedAt: s.clock.now().toISOString() }, doc._etag)) {
      return (await s.subjectRequests.outcomes.getOutcome(tenantId, requestId))!;
    }
  }
  throw new AppError("conflict", "the request's outcome kept changing; the step is tried again");
}

/** `doc` with the ids of `place` in its plan (sorted, distinct). Pure. */
export function withPlanned(doc: OutcomeDoc, place: string, ids: readonly string[]): OutcomeDoc {
  return { ...withoutMeta(doc as StoredOutcome), plan: { ...doc.plan, ids: { ...doc.plan.ids, [place]: [...new Set(ids)].sort() } } };
}

const recipientsAad = (tenantId: string, requestId: string) => fieldAssociatedData(tenantId, requestId, "dsr.outcome.recipients");

/** The recipients stored on the outcome, decrypted (empty when none, or once the request's key was destroyed). */
export async function openRecipients(s: Services, req: Pick<RequestDoc, "tenantId" | "id" | "dataKey">, doc: OutcomeDoc): Promise<string[] | undefined> {
  if (!doc.recipients) return [];
  const key = await unwrapRequestKey(s, req);
  if (!key) return undefined;
  return JSON.parse(decryptField(key, doc.recipients, recipientsAad(req.tenantId, req.id))) as string[];
}

/**
 * The recipients of these uploads as stored (decrypted from each upload that still has its key), without the person
 * the request is about (by keyed hash), distinct by normalised address. The decryption is audited once per set of
 * uploads (`subject-request.recipients-collected`, counts only).
 */
export async function collectRecipients(s: Services, req: RequestDoc, uploadIds: readonly string[], personHashes: readonly string[]): Promise<string[]> {
  const secret = await s.keys.lookupSecret(req.tenantId);
  const found = new Map<string, string>();
  let read = 0;
  await inBatches(uploadIds, UPLOAD_CONCURRENCY, async (id) => {
    const doc = await s.uploads.get(req.tenantId, id);
    if (!doc?.personal || !doc.dataKey) return;
    const key = await unwrapUploadKey(s, doc);
    read++;
    for (const address of JSON.parse(openField(key, req.tenantId, id, "recipients", doc.personal.recipients)) as string[]) {
      const normalised = normaliseEmail(address);
      if (personHashes.includes(lookupHash(secret, normalised))) continue;
      if (!found.has(normalised)) found.set(normalised, address);
    }
  });
  if (read > 0) {
    const setHash = createHash("sha256").update([...uploadIds].sort().join("\n")).digest("hex").slice(0, 32);
    await recordAuditOnce(s, req.tenantId, actorFor(req), "subject-request.recipients-collected", { type: "subject-request", id: req.id }, { uploads: read, recipients: found.size }, `dsr-recipients:${req.id}:${setHash}`);
  }
  return [...found.values()];
}

/** Adds `addresses` to the outcome's recipients (encrypted under the request's key), distinct by normalised address. */
export async function addRecipients(s: Services, req: RequestDoc, addresses: readonly string[]): Promise<StoredOutcome> {
  const key = await unwrapRequestKey(s, req);
  if (!key) throw new AppError("conflict", "the request's key was destroyed");
  return updateOutcome(s, req.tenantId, req.id, (doc) => {
    const current = doc.recipients ? (JSON.parse(decryptField(key, doc.recipients, recipientsAad(req.tenantId, req.id))) as string[]) : [];
    const byNorm = new Map(current.map((a) => [normaliseEmail(a), a]));
    for (const a of addresses) if (!byNorm.has(normaliseEmail(a))) byNorm.set(normaliseEmail(a), a);
    if (byNorm.size === current.length && doc.recipients !== null) return undefined;
    const all = [...byNorm.values()].sort();
    return { ...withoutMeta(doc), recipients: encryptField(key, JSON.stringify(all), recipientsAad(req.tenantId, req.id)), recipientCount: all.length };
  });
}

/**
 * Stores `make()` as the request's record unless one is stored already (the first one stands), writes its audit entry
 * once (naming the record's SHA-256 and `details`), and notes the entry's position and hash on it. Returns the stored
 * record's document.
 */
export async function signRecord(s: Services, req: RequestDoc, action: AuditAction, make: (doc: StoredOutcome) => OutcomeRecord, details: Record<string, string | number | boolean | null>): Promise<StoredOutcome> {
  let doc = await updateOutcome(s, req.tenantId, req.id, (d) => {
    if (d.record) return undefined;
    const record = make(d);
    return { ...withoutMeta(d), record: record as unknown as Record<string, unknown>, recordSha256: recordSha256(record) };
  });
  if (doc.audit) return doc;
  const seq = await recordAuditOnce(s, req.tenantId, actorFor(req), action, { type: "subject-request", id: req.id }, { ...details, recordSha256: doc.recordSha256 }, `dsr-record:${req.id}`);
  if (seq === undefined) throw new AppError("conflict", "the record's audit entry is being written by another worker");
  const hash = await s.audit.entryHash(req.tenantId, seq);
  if (!hash) throw new AppError("conflict", "the record's audit entry is not readable yet");
  // Signed: the work is done, and the keyed hash it worked from goes (the person's hash is kept nowhere it need not be).
  doc = await updateOutcome(s, req.tenantId, req.id, (d) => (d.audit ? undefined : { ...withoutMeta(d), audit: { seq, hash }, plan: { ...d.plan, fromHash: null } }));
  return doc;
}

/** The request's details, decrypted (null when it has none, or once its key was destroyed). */
export async function requestDetails(s: Services, req: RequestDoc): Promise<DsrDetails | null> {
  const sealed = req.personal?.details;
  if (!sealed) return null;
  const key = await unwrapRequestKey(s, req);
  return key ? (JSON.parse(openRequestField(key, req.tenantId, req.id, "details", sealed)) as DsrDetails) : null;
}

/** The request's address, decrypted (null once its key was destroyed). */
export async function requestEmail(s: Services, req: RequestDoc): Promise<string | null> {
  if (!req.personal) return null;
  const key = await unwrapRequestKey(s, req);
  return key ? openRequestField(key, req.tenantId, req.id, "email", req.personal.email) : null;
}

// --- e-mails to the person ------------------------------------------------------------------------------------------

export interface MailContext {
  language: Language;
  timeZone: string;
  controllerName: string;
}

export async function mailContext(s: Services, tenantId: string): Promise<MailContext> {
  const t = await s.tenants.get(tenantId);
  return { language: t?.language ?? DEFAULT_LANGUAGE, timeZone: t?.timeZone ?? DEFAULT_TIME_ZONE, controllerName: t?.name ?? "safedata" };
}

/**
 * E-mails the person the request is about, from `template` in the tenant's language, with a stable message id (so a
 * repeated attempt sends the same message), and writes `subject-request.notified` once. Does nothing when the request's
 * key or address is gone (erased): there is no one to write to. Returns whether it sent.
 */
export async function mailSubject(s: Services, req: RequestDoc, template: string, notice: string, view: PlainView): Promise<boolean> {
  const doc = await s.subjectRequests.get(req.tenantId, req.id);
  if (!doc?.personal) return false;
  const key = await unwrapRequestKey(s, doc);
  if (!key) return false;
  const to = openRequestField(key, doc.tenantId, doc.id, "email", doc.personal.email);
  const c = await mailContext(s, doc.tenantId);
  const message = s.templates.render(template, c.language, {
    controllerName: c.controllerName,
    requestId: doc.id,
    requestType: DSR_TYPE_LABELS[c.language][doc.requestType],
    receivedDate: formatDate(new Date(doc.receivedAt), c.language, c.timeZone),
    ...view,
  });
  await s.email.send({ messageId: `dsr-${notice}-${doc.id}`, to: [to], ...message });
  await recordAuditOnce(s, doc.tenantId, actorFor(doc), "subject-request.notified", { type: "subject-request", id: doc.id }, { to: "subject", notice }, `dsr-notice:${doc.id}:${notice}`);
  return true;
}

// --- the tenant's view ----------------------------------------------------------------------------------------------

export interface OutcomeView {
  requestId: string;
  kind: OutcomeKind;
  /** The record (non-personal), exactly as its audit entry's recordSha256 covers it. */
  record: Record<string, unknown>;
  recordSha256: string;
  /** The audit chain position that records it: `GET /api/v1/audit` shows the entry; its hash is in the chain. */
  signedBy: { auditSeq: number; auditHash: string };
  /** Art. 19: the recipients of the erased or rectified uploads, as stored (null once the request's key was destroyed). */
  recipients: string[] | null;
  recipientsNotified: { at: string; by: string } | null;
}

const notFound = () => new AppError("not-found", "no subject request with this id");

/**
 * GET …/certificate: a completed request's record with the audit position that signs it and, while the request's key
 * exists, the recipients to tell (decrypted: audited as `subject-request.certificate-read`). Errors: not-found (another
 * tenant's id too), conflict (the request has no record yet: not a part-3 type, or not done).
 */
export async function getOutcome(s: Services, caller: TenantCaller, id: string): Promise<OutcomeView> {
  const req = await s.subjectRequests.get(caller.tenantId, id);
  if (!req) throw notFound();
  const doc = await s.subjectRequests.outcomes.getOutcome(caller.tenantId, id);
  if (!doc?.record || !doc.audit || !doc.recordSha256) {
    const recordTypes = ["erasure", "rectification", "restriction", "objection", "withdraw-consent"];
    if (!recordTypes.includes(req.requestType)) {
      throw new AppError("conflict", `a ${req.requestType} request has no certificate or record: only erasure, rectification, restriction, objection and withdraw-consent requests do${req.requestType === "access" || req.requestType === "portability" ? " (its answer is its package: GET …/package)" : ""}`);
    }
    if (req.status === "completed") throw new AppError("conflict", "the request was completed without changing any data (nothing was held about the person), so it has no record");
    throw new AppError("conflict", `the request is ${req.status}; its record exists once its work is done`);
  }
  const recipients = (await openRecipients(s, req, doc)) ?? null;
  if (recipients && recipients.length > 0) {
    await recordAudit(s, caller.tenantId, caller, "subject-request.certificate-read", { type: "subject-request", id }, { recipients: recipients.length });
  }
  return {
    requestId: id,
    kind: doc.kind,
    record: doc.record,
    recordSha256: doc.recordSha256,
    signedBy: { auditSeq: doc.audit.seq, auditHash: doc.audit.hash },
    recipients,
    recipientsNotified: doc.recipientsNotified ? { at: doc.recipientsNotified.at, by: doc.recipientsNotified.by } : null,
  };
}

/**
 * POST …/recipients-notified: the tenant told the recipients of the erased or rectified data (Art. 19), at `at`
 * (default now; never in the future). Recorded once; a second call answers the first record. Audited. The answer names
 * no recipient (GET …/certificate shows them). Errors:
 * not-found, conflict (no record yet, a type without recipients, or no recipients), validation-failed (a future time, a time before
 * the request was received or before EARLIEST_FACT_TIME).
 */
export async function recordRecipientsNotified(s: Services, caller: TenantCaller, id: string, input: { at?: string }): Promise<RecipientsNotified> {
  const now = s.clock.now();
  const at = input.at ? new Date(input.at) : now;
  if (at.getTime() > now.getTime()) throw new AppError("validation-failed", "at: must not be in the future", { errors: [{ path: "at", message: "must not be in the future" }] });
  const req = await s.subjectRequests.get(caller.tenantId, id);
  if (!req) throw notFound();
  // The recipients cannot have been told of an erasure or rectification before the request was received.
  if (at.getTime() < Date.parse(req.receivedAt)) {
    throw new AppError("validation-failed", "at: must not be before the request was received", { errors: [{ path: "at", message: `must not be before the request was received (${req.receivedAt})` }] });
  }
  const doc = await s.subjectRequests.outcomes.getOutcome(caller.tenantId, id);
  if (!doc?.record || !doc.audit) throw new AppError("conflict", `the request is ${req.status}; recipients can be recorded as told once its work is done`);
  if (doc.kind !== "erasure" && doc.kind !== "rectification") throw new AppError("conflict", "only an erasure or a rectification has recipients to tell (Art. 19)");
  // Nothing to record when there was nobody to tell: a record saying they were told would claim what did not happen.
  if (doc.recipientCount === 0 && !doc.recipientsNotified) throw new AppError("conflict", "the erased or rectified data had no recipients: there is nobody to tell (Art. 19), so nothing is recorded");
  if (!doc.recipientsNotified) {
    const entry = await recordAudit(s, caller.tenantId, caller, "subject-request.recipients-notified", { type: "subject-request", id }, { recipients: doc.recipientCount, at: at.toISOString() });
    await updateOutcome(s, caller.tenantId, id, (d) => (d.recipientsNotified ? undefined : { ...withoutMeta(d), recipientsNotified: { at: at.toISOString(), by: caller.actor, auditSeq: entry.seq } }));
  }
  const after = (await s.subjectRequests.outcomes.getOutcome(caller.tenantId, id))!;
  return { requestId: id, recipientCount: after.recipientCount, recipientsNotified: { at: after.recipientsNotified!.at, by: after.recipientsNotified!.by } };
}

/** The answer to recipients-notified: nothing personal (no addresses), so it may be kept for an Idempotency-Key replay. */
export interface RecipientsNotified {
  requestId: string;
  recipientCount: number;
  recipientsNotified: { at: string; by: string };
}

/** The record as a printable page in the tenant's language, with the Content-Security-Policy it is sent with. */
export async function outcomeHtml(s: Services, tenantId: string, view: OutcomeView): Promise<{ html: string; contentSecurityPolicy: string }> {
  const t = await s.tenants.get(tenantId);
  const language = t?.language ?? DEFAULT_LANGUAGE;
  const timeZone = t?.timeZone ?? DEFAULT_TIME_ZONE;
  const when = (iso: unknown) => (typeof iso === "string" ? formatInstant(new Date(iso), language, timeZone) : "—");
  const r = view.record as Record<string, unknown> & {
    erased?: Array<{ place: string; count: number; idsSha256: string }>;
    places?: Array<{ place: string; count: number; idsSha256: string }>;
    kept?: Array<{ kind: string; id: string; groundText: string; until: string | null; count: number }>;
    purposes?: Array<string | { purpose: string; mustStop: string }>;
    consentsWithdrawn?: string[];
  };
  const places = r.erased ?? r.places ?? [];
  const pageView = {
    controllerName: t?.name ?? "",
    tenantId,
    requestId: view.requestId,
    kind: view.kind,
    format: String(r.format ?? ""),
    receivedAt: when(r.receivedAt),
    doneAt: when(r.erasedAt ?? r.rectifiedAt ?? r.restrictedAt ?? r.recordedAt),
    places: places.map((p) => ({ place: p.place, count: p.count, idsSha256: p.idsSha256 })),
    hasPlaces: places.length > 0,
    kept: (r.kept ?? []).map((k) => ({ kind: k.kind, id: k.id, ground: k.groundText, until: k.until ? when(k.until) : "—", count: k.count })),
    hasKept: (r.kept ?? []).length > 0,
    purposes: (r.purposes ?? []).map((p) => (typeof p === "string" ? { purpose: p, mustStop: "" } : p)),
    hasPurposes: (r.purposes ?? []).length > 0,
    consentsWithdrawn: (r.consentsWithdrawn ?? []).map((purpose) => ({ purpose })),
    hasConsentsWithdrawn: (r.consentsWithdrawn ?? []).length > 0,
    method: String(r.method ?? r.effect ?? r.note ?? ""),
    recipients: (view.recipients ?? []).map((address) => ({ address })),
    hasRecipients: (view.recipients ?? []).length > 0,
    recipientCount: Number(r.recipientCount ?? view.recipients?.length ?? 0),
    recipientsNotified: view.recipientsNotified ? when(view.recipientsNotified.at) : "",
    hasRecipientsNotified: view.recipientsNotified !== null,
    recordSha256: view.recordSha256,
    auditSeq: view.signedBy.auditSeq,
    auditHash: view.signedBy.auditHash,
    canonical: JSON.stringify(view.record, null, 2),
  };
  const html = s.pages.render("dsr-certificate", language, pageView);
  const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => `'sha256-${createHash("sha256").update(m[1]!, "utf8").digest("base64")}'`);
  const contentSecurityPolicy = ["default-src 'none'", `style-src ${styles.join(" ") || "'none'"}`, "img-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"].join("; ");
  return { html, contentSecurityPolicy };
}
