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

/** Every well-formed anchor line of `tenantId` in `text`, in the order written. Malformed lines and other tenants' are skipped. */
export function parseAnchors(text: string, tenantId: string): Anchor[] {
  const out: Anchor[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue;
    }
    const parsed = anchorSchema.safeParse(json);
    if (parsed.success && parsed.data.tenantId === tenantId) out.push(parsed.data);
  }
  return out;
}

/**
 * The last well-formed anchor for `tenantId` in the tail of an anchor blob. The tail may start in the middle of
 * a line (only the end of the blob is read): a fragment that does not parse is skipped. Lines of other tenants
 * or of a malformed shape are ignored, never trusted.
 */
export function lastAnchor(tail: string, tenantId: string): Anchor | undefined {
  return parseAnchors(tail, tenantId).at(-1);
}

/** What the anchoring sweep does for one tenant, given its chain head and its latest anchor. */
export type AnchorDecision =
  | { action: "append" }
  | { action: "skip"; reason: "no-chain" | "already-anchored" }
  /**
   * The chain no longer agrees with its latest anchor: the entry it vouches for is gone (the chain is behind it) or
   * has another hash (the chain was rewritten up to it). Never anchor over it; report it.
   */
  | { action: "alarm"; reason: "chain-behind-anchor" | "anchored-entry-changed" };

/**
 * `head` is the chain's head; `anchoredEntryHash` the stored hash of the entry the latest anchor names (undefined
 * if it is missing). Read the anchor before the head: the head only moves forward, so a head read later is never
 * behind an anchor written meanwhile by another run.
 */
export function decideAnchor(head: { seq: number } | undefined, latest: Anchor | undefined, anchoredEntryHash: string | undefined): AnchorDecision {
  if (!head || head.seq === 0) return latest ? { action: "alarm", reason: "chain-behind-anchor" } : { action: "skip", reason: "no-chain" };
  if (!latest) return { action: "append" };
  if (latest.seq > head.seq) return { action: "alarm", reason: "chain-behind-anchor" };
  // Without this, a chain rewritten (or cut and regrown) past its anchor would be anchored again, and pass.
  if (anchoredEntryHash !== latest.hash) return { action: "alarm", reason: "anchored-entry-changed" };
  return latest.seq === head.seq ? { action: "skip", reason: "already-anchored" } : { action: "append" };
}

export type AnchorBreak = Extract<ChainBreak, { reason: "truncated" | "anchor-mismatch" }>;

export interface AnchorCheckResult {
  /** The first (lowest) disagreement between the chain and its anchors, if any. */
  broken?: AnchorBreak;
  /** Anchors compared with an entry in the range walked. */
  checked: number;
}

/**
 * Checks a walked range of the chain against every anchor of the tenant (in the order they were written):
 * - each anchor naming an entry in [fromSeq, lastSeq] must have that entry's hash (`hashAt`, the hashes the walk
 *   verified), so a chain rewritten anywhere before an anchor is caught, even if newer anchors were forged;
 * - anchors never go backwards: an anchor naming an entry below an earlier anchor's means the anchor log itself was
 *   appended to by someone other than the anchoring sweep (which alarms instead of going back);
 * - when the walk reached the end of the chain, no anchor may name an entry after it (newest entries removed).
 */
export function checkAnchors(
  anchors: readonly Anchor[],
  walked: { fromSeq: number; lastSeq: number; reachedEnd: boolean; hashAt: (seq: number) => string | undefined },
): AnchorCheckResult {
  const breaks: AnchorBreak[] = [];
  let checked = 0;
  let highest: Anchor | undefined;
  for (const a of anchors) {
    if (highest && a.seq < highest.seq) {
      breaks.push({
        reason: "anchor-mismatch",
        seq: a.seq,
        detail: `the anchor of ${a.anchoredAt} names entry ${a.seq}, below entry ${highest.seq} anchored at ${highest.anchoredAt}: the anchor log went backwards`,
      });
    }
    if (!highest || a.seq > highest.seq) highest = a;
    if (a.seq < walked.fromSeq || a.seq > walked.lastSeq) continue;
    checked++;
    const hash = walked.hashAt(a.seq);
    if (hash !== a.hash) {
      breaks.push({
        reason: "anchor-mismatch",
        seq: a.seq,
        detail: `entry ${a.seq} does not have the hash anchored outside the database at ${a.anchoredAt}: the chain up to it was rewritten`,
      });
    }
  }
  if (walked.reachedEnd && highest && highest.seq > walked.lastSeq) {
    breaks.push({
      reason: "truncated",
      seq: walked.lastSeq + 1,
      detail: `entry ${highest.seq} was anchored outside the database at ${highest.anchoredAt} but the chain ends at ${walked.lastSeq}: newer entries were removed`,
    });
  }
  breaks.sort((x, y) => x.seq - y.seq);
  return { broken: breaks[0], checked };
}
