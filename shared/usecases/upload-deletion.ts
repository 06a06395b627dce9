/**
 * Deleting an upload, for a sender's request, a data subject's erasure or the end of its 32-day life. The same
 * four steps in the same order, each idempotent, so a crash between any two is finished by the next attempt and
 * nothing is undone or done twice:
 *
 *   1. crypto-shred: the wrapped data key and every personal field leave the record in one conditional write
 *      (status "deleting"); from here on no copy of the payload can be decrypted;
 *   2. delete the payload blobs (a blob already gone is fine, so a resumed deletion simply lists them again), and
 *      purge every access or portability package holding a copy of the content (package-purge.ts: a copy must not
 *      outlive the upload, whichever of the three reasons destroys it);
 *   3. append the audit entry, unless an earlier attempt already did (looked up only when resuming);
 *   4. mark the record "deleted" or "expired": a tombstone of ids, sizes, times and the reason.
 *
 * A worker holds a short lease on a record it is finishing, so two sweeps never work on the same item at once.
 */
import type { AuditAction } from "../domain/audit-chain";
import { assertTransition, isFinal, isLive, plainContentType } from "../domain/uploads";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { DeletionReason, StoredUpload, UploadDoc } from "../stores/upload-store";
import { recordAudit, type Actor, type TenantCaller } from "./audit-trail";
import { purgePackagesHoldingUpload } from "./package-purge";
import { storedStateChanged } from "./running-downloads";

const LEASE_MS = 5 * 60_000;

/**
 * "in-progress": the key is destroyed and the rest is being (or will be) finished by whoever holds the record's
 * lease, or by the next sweep. "busy": the record kept changing under us and nothing was done; try again.
 */
export type DeletionOutcome = "deleted" | "already-deleted" | "not-found" | "in-progress" | "busy" | "not-due";

export interface DeletionFaults {
  /** Test hook: throw after the named step, to prove a later attempt finishes the job exactly once. */
  after?: (step: "shred" | "blobs" | "audit") => void;
}

export function auditActionFor(reason: DeletionReason): AuditAction {
  return reason === "expired" ? "upload.purged" : "upload.deleted";
}

export async function deleteUpload(
  s: Services,
  tenantId: string,
  uploadId: string,
  reason: DeletionReason,
  by: Actor & { sweepId?: string },
  faults: DeletionFaults = {},
  /** "not-due" unless the record, as read for the write that starts (or takes over) the deletion, passes this. */
  onlyIf?: (doc: StoredUpload) => boolean,
): Promise<DeletionOutcome> {
  let doc = await s.uploads.get(tenantId, uploadId);
  if (!doc) return "not-found";
  if (isFinal(doc.status)) return "already-deleted";

  // Step 1 (or take over an unfinished deletion, which an earlier attempt may have taken past step 3).
  let resumed: boolean;
  for (let attempt = 0; ; attempt++) {
    if (attempt > 10) return doc.status === "deleting" ? "in-progress" : "busy";
    if (onlyIf && !onlyIf(doc)) return "not-due";
    const next = claimDeletion(doc, reason, by, s.clock.now());
    if (!next) return "in-progress"; // another worker holds a live lease; the key is already destroyed
    const etag = await s.uploads.replaceIfUnchanged(next, doc._etag);
    if (etag) {
      resumed = doc.status === "deleting";
      doc = { ...next, _etag: etag };
      break;
    }
    const fresh = await s.uploads.get(tenantId, uploadId);
    if (!fresh) return "not-found";
    if (isFinal(fresh.status)) return "already-deleted";
    doc = fresh;
  }
  // Downloads of it running on this instance stop before their next chunk (others see it within a second).
  storedStateChanged(tenantId, uploadId);
  faults.after?.("shred");
  const deletion = doc.deletion!;

  // Step 2: every blob under the upload's prefix, including those of interrupted content attempts.
  await s.payloads.deleteAll(tenantId, uploadId);
  // The copies of the content in access packages go with it (after the key: a package built meanwhile either is
  // found here or finds the upload no longer live when it checks after being stored).
  await purgePackagesHoldingUpload(s, tenantId, uploadId, { actor: deletion.by, requestId: deletion.requestId });
  faults.after?.("blobs");

  // Step 3. Only a resumed deletion can have an entry already (written just before a crash): look for it then.
  const action = auditActionFor(deletion.reason);
  let seq = deletion.auditSeq ?? (resumed ? await s.audit.findByTarget(tenantId, action, uploadId) : undefined);
  if (seq === undefined || seq === null) {
    const entry = await recordAudit(s, tenantId, { actor: deletion.by, requestId: deletion.requestId }, action, { type: "upload", id: uploadId }, {
      reason: deletion.reason,
      bytes: doc.declaredSize,
      keyDestroyedAt: deletion.keyDestroyedAt,
    });
    seq = entry.seq;
  }
  faults.after?.("audit");

  // Step 4.
  const now = s.clock.now().toISOString();
  const final = deletion.reason === "expired" ? "expired" : "deleted";
  assertTransition(doc.status, final);
  const tombstone: UploadDoc = {
    ...withoutMeta(doc),
    status: final,
    updatedAt: now,
    deletion: { ...deletion, blobsDeletedAt: deletion.blobsDeletedAt ?? now, auditSeq: seq, completedAt: now, leaseUntil: null },
  };
  return (await s.uploads.replaceIfUnchanged(tombstone, doc._etag)) ? "deleted" : "in-progress";
}

/**
 * The record as step 1 leaves it, or undefined when another worker holds a live lease. A deletion already under way
 * keeps its original reason and time.
 */
function claimDeletion(doc: StoredUpload, reason: DeletionReason, by: Actor & { sweepId?: string }, now: Date): UploadDoc | undefined {
  const leaseUntil = new Date(now.getTime() + LEASE_MS).toISOString();
  if (doc.status === "deleting" && doc.deletion) {
    if (doc.deletion.leaseUntil && Date.parse(doc.deletion.leaseUntil) > now.getTime()) return undefined;
    // Finishing someone else's deletion: its reason and time stand. The sweep that finishes it is the one whose
    // receipt lists it (an earlier sweep's receipts may already be written).
    return { ...withoutMeta(doc), deletion: { ...doc.deletion, leaseUntil, sweepId: by.sweepId ?? doc.deletion.sweepId } };
  }
  assertTransition(doc.status, "deleting");
  return {
    ...withoutMeta(doc),
    status: "deleting",
    dataKey: null,
    personal: null,
    // A record from before the declared type was encrypted may hold all of it here; the tombstone keeps the plain part.
    contentType: plainContentType(doc.contentType),
    lookups: { subjects: [], recipients: [] },
    receiving: null,
    updatedAt: now.toISOString(),
    deletion: {
      reason,
      requestedAt: now.toISOString(),
      by: by.actor,
      requestId: by.requestId ?? null,
      keyDestroyedAt: now.toISOString(),
      blobsDeletedAt: null,
      auditSeq: null,
      completedAt: null,
      leaseUntil,
      sweepId: by.sweepId ?? null,
    },
  };
}

/**
 * DELETE on the tenant's request: destroys the key at once (the rest may finish moments later, by this request or
 * the next sweep). Once the key is destroyed the deletion has taken effect, so a failure in a later step (storage
 * unreachable while removing the blobs) does not turn the answer into an error: it is logged, this request's lease is
 * given back so the next retention sweep finishes the deletion at once, and the request succeeds. Errors: not-found;
 * conflict when the record kept changing and nothing was deleted yet.
 */
export async function deleteUploadOnRequest(s: Services, caller: TenantCaller, uploadId: string, log: Log): Promise<void> {
  let outcome: DeletionOutcome;
  try {
    outcome = await deleteUpload(s, caller.tenantId, uploadId, "sender-request", caller);
  } catch (err) {
    const doc = await s.uploads.get(caller.tenantId, uploadId).catch(() => undefined);
    if (!doc || isLive(doc.status)) throw err;
    log.warn("upload.deletion-unfinished", { tenantId: caller.tenantId, uploadId, requestId: caller.requestId, errorName: (err as Error).name });
    await s.uploads
      .update(caller.tenantId, uploadId, (d) =>
        d.status === "deleting" && d.deletion?.requestId === caller.requestId && d.deletion.leaseUntil !== null
          ? { ...withoutMeta(d), deletion: { ...d.deletion, leaseUntil: s.clock.now().toISOString() } }
          : undefined,
      )
      .catch(() => undefined);
    return;
  }
  if (outcome === "not-found") throw new AppError("not-found", "no upload with this id");
  if (outcome === "busy") throw new AppError("conflict", "the upload is being changed by other requests; nothing was deleted yet, retry");
}
