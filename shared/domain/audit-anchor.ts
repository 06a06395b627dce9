/**
 * Anchors: the audit chain's head (sequence number and hash) written, once an hour, outside the database, to an
 * append-only blob that is WORM-protected in Azure. The chain alone shows an edited or removed entry, but not
 * someone with database write access who deletes the newest entries and rewinds the head document; an anchor
 * says "entry N with hash H existed at time T", which such a rewrite cannot match. Pure rules here; the blob I/O
 * is in shared/stores/anchor-store.ts.
 */
import { z } from "zod";
import type { ChainBreak } from "./audit-chain";

export const anchorSchema = z.object({
  v: z.literal(1),
  tenantId: z.string().min(1).max(100),
  seq: z.number().int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  anchoredAt: z.iso.datetime(),
});
export type Anchor = z.infer<typeof anchorSchema>;

/** One blob per tenant and UTC month, so no append blob nears the service's 50,000-block limit. */
export function anchorBlobName(tenantId: string, at: Date): string {
  return `${tenantId}/${at.toISOString().slice(0, 7)}.jsonl`;
}

export function anchorLine(anchor: Anchor): string {
  const a = anchorSchema.parse(anchor);
  return JSON.stringify({ v: a.v, tenantId: a.tenantId, seq: a.seq, hash: a.hash, anchoredAt: a.anchoredAt }) + "\n";
}

/**
 * The last well-formed anchor for `tenantId` in the tail of an anchor blob. The tail may start in the middle of
 * a line (only the end of the blob is read): a fragment that does not parse is skipped. Lines of other tenants
 * or of a malformed shape are ignored, never trusted.
 */
export function lastAnchor(tail: string, tenantId: string): Anchor | undefined {
  const lines = tail.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      continue;
    }
    const parsed = anchorSchema.safeParse(raw);
    if (parsed.success && parsed.data.tenantId === tenantId) return parsed.data;
  }
  return undefined;
}

/** What the anchoring sweep does for one tenant, given its chain head and its latest anchor. */
export type AnchorDecision =
  | { action: "append" }
  | { action: "skip"; reason: "no-chain" | "already-anchored" }
  /** The anchor is ahead of the chain: entries it vouches for are gone. Never anchor over it; report it. */
  | { action: "alarm"; reason: "chain-behind-anchor" };

export function decideAnchor(head: { seq: number } | undefined, latest: Anchor | undefined): AnchorDecision {
  if (!head || head.seq === 0) return latest ? { action: "alarm", reason: "chain-behind-anchor" } : { action: "skip", reason: "no-chain" };
  if (!latest) return { action: "append" };
  if (latest.seq > head.seq) return { action: "alarm", reason: "chain-behind-anchor" };
  return latest.seq === head.seq ? { action: "skip", reason: "already-anchored" } : { action: "append" };
}

export type AnchorBreak = Extract<ChainBreak, { reason: "truncated" | "anchor-mismatch" }>;

/**
 * Checks a verified chain against its latest anchor: the entry the anchor names must still be there with the same
 * hash, and the chain must reach at least that far. `entryHash` is the stored hash of entry `anchor.seq` (undefined
 * when it is missing); `lastSeq` is the last entry the chain check reached.
 */
export function checkAnchor(anchor: Anchor, entryHash: string | undefined, lastSeq: number): AnchorBreak | undefined {
  if (lastSeq < anchor.seq) {
    return {
      reason: "truncated",
      seq: lastSeq + 1,
      detail: `entry ${anchor.seq} was anchored outside the database at ${anchor.anchoredAt} but the chain ends at ${lastSeq}: newer entries were removed`,
    };
  }
  if (entryHash !== anchor.hash) {
    return {
      reason: "anchor-mismatch",
      seq: anchor.seq,
      detail:
        entryHash === undefined
          ? `entry ${anchor.seq}, anchored outside the database at ${anchor.anchoredAt}, is missing`
          : `entry ${anchor.seq} does not have the hash anchored at ${anchor.anchoredAt}: the chain up to it was rewritten`,
    };
  }
  return undefined;
}
