/**
 * Consent evidence files (EDPB Guidelines 05/2020 para. 108: keep a copy of what the person was shown): one file per
 * recorded consent event, sent once, PNG, JPEG, WebP, PDF or HTML (shared/domain/consent-evidence.ts), at most
 * CONSENT_EVIDENCE_MAX_BYTES. It is stored encrypted in the upload format (shared/stores/evidence-blobs.ts) under the
 * consent subject's data key, so the subject's erasure shreds it, and bound to the tenant and the event.
 *
 * Storing, in order (a crash anywhere is finished or undone by the retention sweep's catch-up):
 * 1. the event must be recorded (audited) and have no evidence yet; the declared type and size are checked;
 * 2. the evidence record is claimed for this attempt (a conditional write: a concurrent PUT gets 409);
 * 3. the event is read again (an erasure that ran meanwhile leaves nothing to attach to: 404);
 * 4. the body streams through the type check of its first bytes, SHA-256 and encryption into a new blob, committed
 *    only at the end (a refusal, a short or long body, a stall: the attempt's blocks are discarded, the claim goes);
 * 5. `consent.evidence-stored` (type, bytes, SHA-256) goes into the audit log, so the chain proves the file;
 * 6. the record says stored, with the entry's position; if it changed meanwhile (the event was erased), the blob is
 *    discarded and `consent.evidence-discarded` logged.
 *
 * Reading it back is audited before the first byte (`consent.evidence-read`). Erasure: with the event's history
 * (consent-retention.ts), blobs first, then the record.
 */
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { evidenceContentProblem, SNIFF_BYTES, type EvidenceType } from "../domain/consent-evidence";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";
import type { EvidenceDoc, StoredEvidence } from "../stores/consent-store";
import { evidenceId } from "../stores/consent-store";
import { withoutMeta } from "../stores/cosmos";
import { PayloadBodyError, PayloadMissingError } from "../stores/payload-store";
import { recordAudit, recordAuditOnce, type TenantCaller } from "./audit-trail";
import { unwrapSubjectKey } from "./consent-keys";

/** A PUT that has received nothing for this long since it claimed the record (its instance died) no longer holds it. */
export const EVIDENCE_RECEIVING_LEASE_MS = 35 * 60_000;

/** What a PUT of evidence sent: its declared type (already parsed and checked), its length and its body. */
export interface IncomingEvidence {
  type: EvidenceType;
  /** Content-Length, required (the file is stored at exactly this size). */
  contentLength: number | null;
  body: Readable;
}

/** The evidence record as the API shows it. */
export interface EvidenceView {
  eventId: string;
  contentType: EvidenceType;
  bytes: number;
  sha256: string;
  storedAt: string;
  audit: { seq: number; hash: string };
}

const viewOf = (doc: EvidenceDoc): EvidenceView => ({
  eventId: doc.eventId,
  contentType: doc.contentType,
  bytes: doc.size,
  sha256: doc.content!.sha256,
  storedAt: doc.content!.storedAt,
  audit: doc.audit!,
});

const noEvent = () => new AppError("not-found", "no consent event with this id");

/**
 * PUT /consents/{id}/evidence. Errors: not-found (no recorded event of the tenant), conflict (sent already, or being
 * sent), malformed-request (no Content-Length, an empty file, a body shorter than it), payload-too-large (over
 * CONSENT_EVIDENCE_MAX_BYTES, or longer than Content-Length), unsupported-media-type (the first bytes are not the
 * declared type), request-timeout (the body stopped arriving).
 */
export async function putEvidence(s: Services, caller: TenantCaller, eventId: string, incoming: IncomingEvidence, log: Log): Promise<EvidenceView> {
  const { tenantId } = caller;
  const event = await s.consents.getEvent(tenantId, eventId);
  if (!event || !event.audit) throw noEvent();
  const existing = await s.consents.getEvidence(tenantId, eventId);
  const now = s.clock.now();
  if (existing?.content) throw new AppError("conflict", "this event has its evidence already; a file is sent once");
  if (existing?.receiving && now.getTime() - Date.parse(existing.receiving.since) < EVIDENCE_RECEIVING_LEASE_MS) {
    throw new AppError("conflict", "the evidence is being sent by another request");
  }
  const size = incoming.contentLength;
  if (size === null) throw new AppError("malformed-request", "send the file with a Content-Length: evidence is stored at exactly its declared size");
  if (size > s.settings.consentEvidenceMaxBytes) throw new AppError("payload-too-large", `evidence files may be at most ${s.settings.consentEvidenceMaxBytes} bytes`);
  if (size === 0) throw new AppError("malformed-request", "the file is empty: evidence is a copy of what the person was shown");

  // What can fail for reasons other than the client (a damaged or destroyed key) fails before anything is claimed.
  const subject = await s.consents.getSubjectById(tenantId, event.subjectId);
  if (!subject) throw noEvent();
  const dataKey = await unwrapSubjectKey(s, subject);

  const attemptId = randomBytes(8).toString("hex");
  const claim: EvidenceDoc = {
    id: evidenceId(eventId),
    tenantId,
    type: "consent-evidence",
    eventId,
    subjectId: event.subjectId,
    purposeKey: event.purposeKey,
    contentType: incoming.type,
    size,
    receiving: { attemptId, since: now.toISOString() },
    content: null,
    audit: null,
    createdAt: existing?.createdAt ?? now.toISOString(),
  };
  if (!(await s.consents.saveEvidence(claim, existing?._etag))) throw new AppError("conflict", "the evidence is being sent by another request");
  const target = { tenantId, eventId, attemptId };
  // A dead attempt's claim was taken over: its staged blocks go now.
  if (existing?.receiving) await s.consentEvidence.discard({ tenantId, eventId, attemptId: existing.receiving.attemptId });
  const release = async () => {
    const current = await s.consents.getEvidence(tenantId, eventId);
    if (current?.receiving?.attemptId === attemptId && !current.content) await s.consents.deleteEvidence(tenantId, eventId, current._etag);
  };
  const discard = async () => {
    try {
      await s.consentEvidence.discard(target);
    } catch (err) {
      log.warn("consent.evidence-attempt-not-discarded", { tenantId, eventId, errorName: (err as Error).name });
    }
  };

  // An erasure of the event's history that ran after the first read leaves nothing to attach the file to.
  if (!(await s.consents.getEvent(tenantId, eventId))) {
    await release();
    throw noEvent();
  }

  let stored;
  try {
    stored = await s.consentEvidence.write(target, dataKey, incoming.body, {
      size,
      idleMs: s.settings.uploadIdleSeconds * 1000,
      head: {
        bytes: SNIFF_BYTES,
        check: (head) => {
          const problem = evidenceContentProblem(incoming.type, head);
          if (problem) throw new PayloadBodyError("unsupported-media-type", `${problem}; nothing was stored`, head.length);
        },
      },
    });
  } catch (err) {
    incoming.body.destroy();
    await discard();
    await release();
    if (err instanceof PayloadBodyError && err.kind === "request-timeout") log.warn("consent.evidence-stalled", { tenantId, eventId, received: err.received, declared: size });
    throw err;
  }

  const auditTarget = { type: "consent-event" as const, id: eventId };
  // An attempt thrown away after its entry may be stored (the answer lost, or the record changed meanwhile): the log
  // says it was discarded (best effort: a log that cannot be written now took neither).
  const logDiscarded = () =>
    recordAudit(s, tenantId, caller, "consent.evidence-discarded", auditTarget, { bytes: size, sha256: stored.sha256, attemptId }).then(
      () => undefined,
      (err: unknown) => log.error("consent.audit-failed", { tenantId, eventId, action: "consent.evidence-discarded", errorName: (err as Error).name }),
    );
  let seq: number | undefined;
  try {
    seq = await recordAuditOnce(
      s,
      tenantId,
      caller,
      "consent.evidence-stored",
      auditTarget,
      { subjectId: event.subjectId, purposeKey: event.purposeKey, contentType: incoming.type, bytes: size, sha256: stored.sha256, attemptId },
      `consent.evidence-stored:${tenantId}:${eventId}:${attemptId}`,
    );
  } catch (err) {
    await discard();
    await release();
    await logDiscarded();
    throw err;
  }
  const hash = seq === undefined ? undefined : await s.audit.entryHash(tenantId, seq);
  const current = await s.consents.getEvidence(tenantId, eventId);
  const done: EvidenceDoc | undefined =
    seq !== undefined && hash && current?.receiving?.attemptId === attemptId
      ? {
          ...withoutMeta(current),
          receiving: null,
          content: { blobName: stored.blobName, header: stored.header, ciphertextSize: stored.ciphertextSize, sha256: stored.sha256, storedAt: s.clock.now().toISOString() },
          audit: { seq, hash },
        }
      : undefined;
  if (!done || !(await s.consents.saveEvidence(done, current!._etag))) {
    // A save applied whose answer was lost (a retry met its own change and found the record changed): the record
    // holds this attempt's file, which is the answer and stays. An error reading it back is thrown, the blob kept.
    const after = done ? await s.consents.getEvidence(tenantId, eventId) : undefined;
    if (done && after?.content?.blobName === stored.blobName) return viewOf(done);
    // Erased or taken over while the file was stored: this attempt's blob must not outlive the record's say-so.
    await discard();
    await logDiscarded();
    throw new AppError("conflict", "the consent event changed while its evidence was being stored; nothing was kept");
  }
  return viewOf(done);
}

/** What a GET of evidence answers: the file's type and size, and (not for HEAD) its decrypted bytes. */
export interface OpenedEvidence {
  contentType: EvidenceType;
  size: number;
  sha256: string;
  body?: Readable;
}

/**
 * GET /consents/{id}/evidence: the file, decrypted as it streams. The read is written to the audit log before its
 * first byte (`consent.evidence-read`); HEAD answers the headers only and reads nothing. `acceptable` throws when the
 * request does not accept the file's type (the trigger's Accept check), before anything is read. Errors: not-found
 * (no such event, or no evidence), not-acceptable (from `acceptable`), integrity-error (the blob is missing or
 * damaged at its start: IntegrityError).
 */
export async function openEvidence(
  s: Services,
  caller: TenantCaller,
  eventId: string,
  method: "GET" | "HEAD",
  acceptable: (contentType: EvidenceType) => void = () => undefined,
): Promise<OpenedEvidence> {
  const { tenantId } = caller;
  const doc = await s.consents.getEvidence(tenantId, eventId);
  if (!doc?.content) throw new AppError("not-found", "this consent event has no evidence file");
  // The caller's Accept, before anything is read or audited (a refused type is no read).
  acceptable(doc.contentType);
  const answer = { contentType: doc.contentType, size: doc.size, sha256: doc.content.sha256 };
  if (method === "HEAD") return answer;
  const subject = await s.consents.getSubjectById(tenantId, doc.subjectId);
  if (!subject) throw new AppError("not-found", "this consent event has no evidence file");
  const dataKey = await unwrapSubjectKey(s, subject);
  await recordAudit(s, tenantId, caller, "consent.evidence-read", { type: "consent-event", id: eventId }, { subjectId: doc.subjectId, bytes: doc.size, sha256: doc.content.sha256 });
  let body: Readable;
  try {
    body = await s.consentEvidence.open({ tenantId, eventId, blobName: doc.content.blobName, header: doc.content.header, size: doc.size }, dataKey);
  } catch (err) {
    if (err instanceof PayloadMissingError) throw new AppError("integrity-error", "the evidence file is missing from storage; nothing was sent and the incident was logged");
    throw err;
  }
  return { ...answer, body };
}

/**
 * Removes an event's evidence: every blob under the event (committed or staged), then the record. Idempotent; for
 * the erasure of the event's history and for a claim a dead PUT left. Returns whether anything was there.
 */
export async function eraseEvidence(s: Services, tenantId: string, eventId: string): Promise<boolean> {
  const blobs = await s.consentEvidence.deleteAll(tenantId, eventId);
  const doc = await s.consents.deleteEvidence(tenantId, eventId);
  return blobs > 0 || doc;
}

/**
 * The retention sweep's share for a claim a dead PUT left (received nothing for EVIDENCE_RECEIVING_LEASE_MS): its
 * attempt's blocks go, and the claim, so the file can be sent again; an event erased meanwhile loses its evidence.
 */
export async function settleStaleEvidence(s: Services, tenantId: string, docId: string): Promise<"purged" | "skipped"> {
  const eventId = docId.replace(/^evidence:/, "");
  const doc: StoredEvidence | undefined = await s.consents.getEvidence(tenantId, eventId);
  if (!doc?.receiving || s.clock.now().getTime() - Date.parse(doc.receiving.since) < EVIDENCE_RECEIVING_LEASE_MS) return "skipped";
  if (!(await s.consents.getEvent(tenantId, eventId))) return (await eraseEvidence(s, tenantId, eventId)) ? "purged" : "skipped";
  await s.consentEvidence.discard({ tenantId, eventId, attemptId: doc.receiving.attemptId });
  return (await s.consents.deleteEvidence(tenantId, eventId, doc._etag)) ? "purged" : "skipped";
}
