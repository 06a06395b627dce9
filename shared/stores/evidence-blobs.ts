/**
 * Consent evidence files in Blob Storage (container "consent-evidence"): the same encrypted streaming format and
 * write path as upload payloads (payload-store.ts: exact size, idle watch, blocks staged and committed only at the
 * end, a failed attempt discarded), under `<tenantId>/<eventId>/<attemptId>`, encrypted with the consent subject's
 * data key and bound to the tenant and the event (associated data `consent-evidence`, docs/encryption-format.md).
 * This module only names things as evidence does; the work is PayloadStore's.
 */
import type { Readable } from "node:stream";
import type { ContainerClient } from "@azure/storage-blob";
import { consentEvidenceAssociatedData } from "../crypto";
import { PayloadStore, type ContentKind, type HeadCheck, type StoredPayload } from "./payload-store";

const EVIDENCE_CONTENT: ContentKind = { label: "event", associatedData: consentEvidenceAssociatedData };

/** One content attempt of an event's evidence. */
export interface EvidenceTarget {
  tenantId: string;
  eventId: string;
  attemptId: string;
}

export class EvidenceBlobs {
  private readonly store: PayloadStore;

  constructor(container: ContainerClient) {
    this.store = new PayloadStore(container, EVIDENCE_CONTENT);
  }

  /**
   * Encrypts exactly `size` bytes of `body` into a new blob for this attempt, checking its first bytes with `head`
   * and hashing it (SHA-256). Errors as PayloadStore.write; the caller discards a failed attempt.
   */
  write(target: EvidenceTarget, dataKey: Buffer, body: Readable, opts: { size: number; idleMs: number; head: HeadCheck }): Promise<StoredPayload & { sha256: string }> {
    return this.store
      .write({ tenantId: target.tenantId, uploadId: target.eventId, attemptId: target.attemptId }, dataKey, body, { ...opts, sha256: true })
      .then((stored) => ({ ...stored, sha256: stored.sha256! }));
  }

  /** Removes what an attempt left (its blob or staged blocks). Idempotent. */
  discard(target: EvidenceTarget): Promise<void> {
    return this.store.discard({ tenantId: target.tenantId, uploadId: target.eventId, attemptId: target.attemptId });
  }

  /** The decrypted file, once its first authenticated bytes are ready (PayloadStore.open). */
  open(ref: { tenantId: string; eventId: string; blobName: string; header: string; size: number }, dataKey: Buffer): Promise<Readable> {
    return this.store.open({ tenantId: ref.tenantId, uploadId: ref.eventId, blobName: ref.blobName, header: ref.header, size: ref.size }, dataKey);
  }

  /** Deletes every blob of the event's evidence (all attempts, staged blocks included); returns how many names. */
  deleteAll(tenantId: string, eventId: string): Promise<number> {
    return this.store.deleteAll(tenantId, eventId);
  }

  probe(): Promise<void> {
    return this.store.probe();
  }
}
