/**
 * Audit anchoring and verification. Once an hour a timer writes every tenant's chain head to the WORM anchor
 * blobs (shared/stores/anchor-store.ts); verification checks the chain (shared/stores/audit-store.ts) and the
 * chain against every anchor of the tenant. The sweep visits every tenant each run, so a crash or a missed run is
 * caught up by the next one, and writing an anchor twice is prevented by a conditional append.
 */
import { checkAnchors, decideAnchor, type Anchor } from "../domain/audit-anchor";
import { errorFields, type Log } from "../observability";
import type { Services } from "../services";
import { entryId, type VerifyOptions, type VerifyResult } from "../stores/audit-store";
import { declareSweep } from "../sweeps";

export const ANCHOR_SWEEP = "audit-anchor";
export const ANCHOR_INTERVAL_MINUTES = 60;
/** Six-field NCRONTAB (UTC): five minutes past every hour. */
export const ANCHOR_SCHEDULE = "0 5 * * * *";

declareSweep({
  name: ANCHOR_SWEEP,
  intervalMinutes: ANCHOR_INTERVAL_MINUTES,
  check: (hb) =>
    (hb.counts.alarms ?? 0) > 0
      ? { healthy: false, reason: `${hb.counts.alarms} tenant chain(s) disagree with their anchors or head documents; see the audit.anchor-alarm log` }
      : (hb.counts.failed ?? 0) > 0
        ? { healthy: false, reason: `${hb.counts.failed} tenant(s) could not be anchored in the last run` }
        : undefined,
});

const ACTOR = "system:audit-anchor";
/** Tenants looked at in parallel within a page. */
const PARALLEL = 8;

export interface AnchorCounts {
  tenants: number;
  anchored: number;
  unchanged: number;
  alarms: number;
  failed: number;
}

type TenantOutcome = "anchored" | "unchanged" | "alarm" | "failed";

async function anchorTenant(s: Services, tenantId: string, now: Date, log?: Log): Promise<TenantOutcome> {
  for (let attempt = 0; attempt < 5; attempt++) {
    // Anchors first, then the head: the head only moves forward, so it is never behind an anchor read before it.
    const seen = await s.anchors.read(tenantId);
    const latest = seen.anchor;
    const head = await s.audit.head(tenantId);
    if (head && (await s.audit.entryHash(tenantId, head.seq)) !== head.hash) {
      // The head document names an entry that is not there or has another hash: never anchor that.
      log?.error("audit.anchor-alarm", { tenantId, reason: "head-disagrees-with-entry", seq: head.seq });
      return "alarm";
    }
    const anchoredEntryHash = latest && head && latest.seq <= head.seq ? await s.audit.entryHash(tenantId, latest.seq) : undefined;
    const decision = decideAnchor(head, latest, anchoredEntryHash);
    if (decision.action === "alarm") {
      log?.error("audit.anchor-alarm", { tenantId, reason: decision.reason, anchoredSeq: latest?.seq ?? null, headSeq: head?.seq ?? 0 });
      return "alarm";
    }
    if (decision.action === "skip") return "unchanged";
    const anchor: Anchor = { v: 1, tenantId, seq: head!.seq, hash: head!.hash, anchoredAt: now.toISOString() };
    if (await s.anchors.append(anchor, seen)) return "anchored";
    // Another run appended meanwhile: look again.
  }
  log?.warn("audit.anchor-failed", { tenantId, reason: "lost the append race five times" });
  return "failed";
}

/** One timer run: anchor every tenant whose chain moved since its last anchor; record the heartbeat. */
export async function runAnchorSweep(s: Services, opts: { pastDue?: boolean; log?: Log; pageSize?: number } = {}): Promise<AnchorCounts> {
  const started = s.clock.now();
  await s.heartbeats.started(ANCHOR_SWEEP, started, opts.pastDue ?? false);
  if (opts.pastDue) opts.log?.warn("audit.anchor-past-due", { startedAt: started.toISOString() });
  const counts: AnchorCounts = { tenants: 0, anchored: 0, unchanged: 0, alarms: 0, failed: 0 };
  try {
    let cursor: string | undefined;
    do {
      const page = await s.tenants.ids(opts.pageSize ?? 100, cursor);
      cursor = page.cursor;
      for (let i = 0; i < page.items.length; i += PARALLEL) {
        const outcomes = await Promise.all(
          page.items.slice(i, i + PARALLEL).map(({ tenantId }) =>
            anchorTenant(s, tenantId, started, opts.log).catch((err: unknown): TenantOutcome => {
              // One tenant's failure does not stop the others; the next run tries it again.
              opts.log?.warn("audit.anchor-failed", { tenantId, ...errorFields(err) });
              return "failed";
            }),
          ),
        );
        for (const o of outcomes) {
          counts.tenants++;
          counts[o === "alarm" ? "alarms" : o]++;
        }
      }
    } while (cursor);
    await s.heartbeats.finished(ANCHOR_SWEEP, s.clock.now(), "succeeded", { ...counts }, null);
    s.telemetry.metric("audit.anchored", counts.anchored);
    opts.log?.info("audit.anchor-sweep", { actor: ACTOR, ...counts });
    return counts;
  } catch (err) {
    await s.heartbeats.finished(ANCHOR_SWEEP, s.clock.now(), "failed", { ...counts }, null).catch(() => undefined);
    throw err;
  }
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
