/**
 * Reading and verifying a tenant's audit log: the hash chain of shared/stores/audit-store.ts, checked entry by entry
 * and against the chain heads anchored hourly outside the database (audit-anchoring.ts).
 */
import { checkAnchors } from "../domain/audit-anchor";
import type { AuditEntry } from "../domain/audit-chain";
import { AppError } from "../errors";
import type { Services } from "../services";
import { entryId, type VerifyOptions, type VerifyResult } from "../stores/audit-store";

export { MAX_VERIFY_ENTRIES } from "../stores/audit-store";

/** One page of the tenant's entries, oldest first, optionally within [from, to). Errors: invalid-parameter. */
export async function listAuditEntries(
  s: Services,
  tenantId: string,
  opts: { from?: Date; to?: Date; limit: number; cursor?: string },
): Promise<{ items: Array<Omit<AuditEntry, "tenantId">>; nextCursor?: string }> {
  if (opts.from && opts.to && opts.from > opts.to) throw new AppError("invalid-parameter", "from must not be after to");
  const page = await s.audit.list(tenantId, opts);
  return { items: page.items.map(({ tenantId: _t, ...e }) => e), nextCursor: page.cursor };
}

export interface AnchorCheck {
  /**
   * matches: every anchor naming an entry in the range checked agrees with it (and, when the part reached the end of
   * the chain, the chain reaches the newest anchor); broken: one does not (see firstBroken); none: the tenant has no
   * anchor yet (a chain younger than the first hourly run); not-checked: the chain part is broken already, or the
   * part checked no entry.
   */
  status: "matches" | "broken" | "none" | "not-checked";
  /** Anchors compared with an entry in this part. */
  checked: number;
  /** The newest anchor. */
  latest?: { seq: number; anchoredAt: string };
}

/**
 * Verifies (a part of) a tenant's chain, and the part against every anchor written for the tenant. The anchors are
 * read before the chain is walked, so an anchor written during a long walk cannot look like a removed entry.
 */
export async function verifyAudit(s: Services, tenantId: string, opts: Omit<VerifyOptions, "onVerified">): Promise<VerifyResult & { anchor: AnchorCheck }> {
  const anchors = await s.anchors.all(tenantId);
  const wanted = new Set(anchors.map((a) => a.seq));
  const hashes = new Map<number, string>();
  const result = await s.audit.verify(tenantId, { ...opts, onVerified: (seq, hash) => wanted.has(seq) && hashes.set(seq, hash) });
  const newest = anchors.at(-1);
  if (!newest) return { ...result, anchor: { status: "none", checked: 0 } };
  const latestView = { latest: { seq: newest.seq, anchoredAt: newest.anchoredAt } };
  // A later part that found no entry (fromSeq past the end) has nothing to hold against the anchors.
  if (!result.valid || (result.entriesChecked === 0 && result.fromSeq > 1)) return { ...result, anchor: { status: "not-checked", checked: 0, ...latestView } };
  const check = checkAnchors(anchors, {
    fromSeq: result.fromSeq,
    lastSeq: result.lastSeq,
    reachedEnd: result.next === undefined,
    hashAt: (seq) => hashes.get(seq),
  });
  if (!check.broken) return { ...result, anchor: { status: "matches", checked: check.checked, ...latestView } };
  return {
    ...result,
    valid: false,
    firstBroken: { ...check.broken, entryId: entryId(check.broken.seq) },
    anchor: { status: "broken", checked: check.checked, ...latestView },
  };
}
