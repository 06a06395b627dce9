/**
 * Audit anchoring. Once an hour a timer writes every tenant's chain head to the WORM anchor blobs
 * (shared/stores/anchor-store.ts); verification (audit-log.ts) checks the chain against them. The sweep visits every
 * tenant each run, so a crash or a missed run is caught up by the next one, and writing an anchor twice is prevented
 * by a conditional append. Before anchoring, it recomputes the hashes of the entries written since the last anchor
 * (and of the anchored entry itself) and checks their links (verifySinceAnchor): an anchor vouches for the chain up to
 * its head, so it must never be written over an entry whose content no longer matches its stored hash.
 */
import { decideAnchor, type Anchor } from "../domain/audit-anchor";
import { GENESIS_HASH, type ChainBreak } from "../domain/audit-chain";
import { errorFields, type Log } from "../observability";
import type { Services } from "../services";
import { declareSweep } from "../sweeps";
import { openAnchorAlarmDraft, type AnchorAlarm } from "./breaches";

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

/**
 * An alarm opens a draft integrity breach for the operator to confirm or dismiss (once per alarm: the same broken
 * state found again by later runs names the same draft). A draft that cannot be written now is written by the next
 * run, which finds the same alarm; the anchoring itself goes on.
 */
async function raiseAlarm(s: Services, alarm: AnchorAlarm, log?: Log): Promise<"alarm"> {
  await openAnchorAlarmDraft(s, alarm).catch((err: unknown) => log?.warn("audit.anchor-alarm-draft-failed", { tenantId: alarm.tenantId, ...errorFields(err) }));
  return "alarm";
}

/**
 * Recomputes the hash of every entry from the latest anchor's entry (or the genesis) to the end of the chain and
 * checks each link, in parts of the store's verify limit. Returns the first break, or undefined when all agree.
 * Cost: one query page per 500 entries and one SHA-256 per entry (see the README's "Known limits" for a measurement).
 */
export async function verifySinceAnchor(s: Services, tenantId: string, latest: Anchor | undefined): Promise<ChainBreak | undefined> {
  let from: { seq: number; prevHash: string } | undefined;
  if (latest) {
    const prevHash = latest.seq > 1 ? await s.audit.entryHash(tenantId, latest.seq - 1) : GENESIS_HASH;
    // A missing entry before the anchored one cannot link: verify reports it as a broken link.
    from = { seq: latest.seq, prevHash: prevHash ?? "" };
  }
  for (;;) {
    const r = await s.audit.verify(tenantId, from ? { from } : {});
    if (r.firstBroken) return r.firstBroken;
    if (r.complete || !r.next) return undefined;
    from = { seq: r.next.fromSeq, prevHash: r.next.prevHash };
  }
}

async function anchorTenant(s: Services, tenantId: string, now: Date, log?: Log): Promise<TenantOutcome> {
  for (let attempt = 0; attempt < 5; attempt++) {
    // Anchors first, then the head: the head only moves forward, so it is never behind an anchor read before it.
    const seen = await s.anchors.read(tenantId);
    const latest = seen.anchor;
    const head = await s.audit.head(tenantId);
    if (head && (await s.audit.entryHash(tenantId, head.seq)) !== head.hash) {
      // The head document names an entry that is not there or has another hash: never anchor that.
      log?.error("audit.anchor-alarm", { tenantId, reason: "head-disagrees-with-entry", seq: head.seq });
      return raiseAlarm(s, { tenantId, reason: "head-disagrees-with-entry", anchoredSeq: latest?.seq ?? null, anchoredAt: latest?.anchoredAt ?? null, headSeq: head.seq, evidence: head.hash, detectedAt: now }, log);
    }
    const anchoredEntryHash = latest && head && latest.seq <= head.seq ? await s.audit.entryHash(tenantId, latest.seq) : undefined;
    const decision = decideAnchor(head, latest, anchoredEntryHash);
    if (decision.action === "alarm") {
      log?.error("audit.anchor-alarm", { tenantId, reason: decision.reason, anchoredSeq: latest?.seq ?? null, headSeq: head?.seq ?? 0 });
      return raiseAlarm(
        s,
        { tenantId, reason: decision.reason, anchoredSeq: latest?.seq ?? null, anchoredAt: latest?.anchoredAt ?? null, headSeq: head?.seq ?? 0, evidence: latest?.hash ?? "", detectedAt: now },
        log,
      );
    }
    if (decision.action === "skip") return "unchanged";
    const broken = await verifySinceAnchor(s, tenantId, latest);
    if (broken) {
      // An entry written since the last anchor (or the anchored one) no longer matches its stored hash, or a link is
      // broken: never anchor over it; report it as the anchors' own disagreements are.
      log?.error("audit.anchor-alarm", { tenantId, reason: "chain-broken-since-anchor", breakReason: broken.reason, seq: broken.seq, anchoredSeq: latest?.seq ?? null, headSeq: head!.seq });
      const evidence = (await s.audit.entryHash(tenantId, broken.seq)) ?? `missing-${broken.seq}`;
      return raiseAlarm(
        s,
        { tenantId, reason: "chain-broken-since-anchor", anchoredSeq: latest?.seq ?? null, anchoredAt: latest?.anchoredAt ?? null, headSeq: head!.seq, evidence: `${broken.reason}:${broken.seq}:${evidence}`, detectedAt: now },
        log,
      );
    }
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
