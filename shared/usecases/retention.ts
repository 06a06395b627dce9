/**
 * The retention sweep: the 32-day purge and every other retention class, applied by a timer nobody has to
 * remember. Each run is a catch-up query ("everything due by now that is not done, oldest first"), so a missed or
 * crashed run is simply finished by the next one.
 *
 * The timer does not purge: it finds due items and fans them out to the purge-batches queue, a batch per message,
 * so no run approaches the function timeout whatever the backlog. Workers purge each item with idempotent steps
 * (see upload-deletion.ts) under a per-item lease, so concurrent or repeated batches never purge an item twice.
 * When every batch of a sweep is done, each affected tenant gets a deletion receipt in its audit log: the ids,
 * their count and a hash over them, as evidence for the controller (GDPR Art. 28(3)(g)).
 */
import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import { QUEUES } from "../config/resources";
import {
  dueCalendar,
  IDEMPOTENCY_RECORD_LIFE_MS,
  overdueBeyondGrace,
  receiptDigest,
  RETENTION_CLASSES,
  uploadPurgeDue,
  type RetentionClass,
} from "../domain/retention";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import { sweepComplete } from "../stores/sweep-store";
import { declareSweep } from "../sweeps";
import { recordAuditOnce, type Actor } from "./audit-trail";
import { ACTIVE_RETENTION_CLASSES, notificationMessage, purgeBatchMessage, type ActiveRetentionClass, type PurgeBatchMessage } from "./messages";
import { deleteUpload, type DeletionFaults } from "./upload-deletion";

export const RETENTION_SWEEP = "retention";
export const RETENTION_INTERVAL_MINUTES = 15;
/** Six-field NCRONTAB (UTC): every 15 minutes. */
export const RETENTION_SCHEDULE = "0 */15 * * * *";

declareSweep({
  name: RETENTION_SWEEP,
  intervalMinutes: RETENTION_INTERVAL_MINUTES,
  check: (hb, now, settings) => {
    const oldest = hb.oldestOverdueAt ? new Date(hb.oldestOverdueAt) : null;
    return overdueBeyondGrace(oldest, now, settings.purgeGraceMinutes)
      ? { healthy: false, reason: `an item has been overdue since ${hb.oldestOverdueAt}, longer than the ${settings.purgeGraceMinutes}-minute grace` }
      : undefined;
  },
});

interface DueItem {
  tenantId: string;
  id: string;
  dueAt: string;
}

type PurgeOutcome = "purged" | "skipped" | "busy";

interface ClassHandler {
  /** Due items across all tenants, oldest first, at most `limit`. */
  findDue(s: Services, now: Date, limit: number): Promise<DueItem[]>;
  purge(s: Services, item: { tenantId: string; id: string }, sweepId: string, faults?: DeletionFaults): Promise<PurgeOutcome>;
}

const BY: Actor = { actor: "system:retention" };

/** Oldest due first, at most `limit`, as the sweep's work list. */
function dueFirst(rows: Array<{ tenantId: string; id: string; due: Date | null }>, now: Date, limit: number): DueItem[] {
  return rows
    .filter((r): r is { tenantId: string; id: string; due: Date } => r.due !== null && r.due.getTime() <= now.getTime())
    .sort((a, b) => a.due.getTime() - b.due.getTime())
    .slice(0, limit)
    .map((r) => ({ tenantId: r.tenantId, id: r.id, dueAt: r.due.toISOString() }));
}

const HANDLERS: Record<ActiveRetentionClass, ClassHandler> = {
  safedata: {
    findDue: async (s, now, limit) => {
      // Expired uploads, and deletions a crashed run left unfinished; the domain rule decides each candidate.
      const candidates = await s.uploads.findPurgeCandidatesAcrossTenants(now, limit);
      return candidates
        .filter((u) => uploadPurgeDue(u, s.settings, now))
        .map((u) => ({ tenantId: u.tenantId, id: u.id, dueAt: u.expiresAt }));
    },
    purge: async (s, item, sweepId, faults) => {
      const r = await deleteUpload(s, item.tenantId, item.id, "expired", { ...BY, sweepId }, faults);
      return r === "deleted" ? "purged" : r === "busy" || r === "in-progress" ? "busy" : "skipped";
    },
  },

  "suspended-tenant": {
    findDue: async (s, now, limit) => {
      const cls: RetentionClass = RETENTION_CLASSES["suspended-tenant"];
      const rows = await s.tenants.findSuspendedAcrossTenants();
      return dueFirst(rows.map((r) => ({ tenantId: r.tenantId, id: r.tenantId, due: cls.dueAt(r, s.settings) })), now, limit);
    },
    purge: (s, item, sweepId, faults) => offboardTenant(s, item.tenantId, sweepId, faults),
  },

  "idempotency-record": {
    findDue: async (s, now, limit) => {
      const cls: RetentionClass = RETENTION_CLASSES["idempotency-record"];
      const rows = await s.idempotency.findCreatedBeforeAcrossTenants(new Date(now.getTime() - IDEMPOTENCY_RECORD_LIFE_MS), limit);
      return dueFirst(rows.map((r) => ({ tenantId: r.tenantId, id: r.id, due: cls.dueAt(r, s.settings) })), now, limit);
    },
    purge: async (s, item) => ((await s.idempotency.delete(item.tenantId, item.id)) ? "purged" : "skipped"),
  },
};

/** How long one offboarding run keeps deleting before it yields (the function timeout is 30 minutes). */
const OFFBOARD_BUDGET_MS = 4 * 60_000;

/**
 * A suspended tenant past its notice period: delete its uploads, then its keys (which leaves nothing it stored
 * readable anywhere, backups included), record it once, and only then mark it offboarded, so a crash at any point
 * is finished by the next sweep. Returns "busy" while uploads remain after the time budget.
 */
async function offboardTenant(s: Services, tenantId: string, sweepId: string, faults?: DeletionFaults): Promise<PurgeOutcome> {
  const tenant = await s.tenants.get(tenantId);
  if (!tenant || tenant.offboardedAt || tenant.status !== "suspended") return "skipped";
  const started = Date.now();
  for (;;) {
    const ids = await s.uploads.unfinishedIds(tenantId, 200);
    if (ids.length === 0) break;
    let progressed = false;
    for (const id of ids) {
      const r = await deleteUpload(s, tenantId, id, "tenant-offboarded", { ...BY, sweepId }, faults);
      if (r !== "busy" && r !== "in-progress") progressed = true;
    }
    // Uploads another worker holds a lease on, or a run out of time: the next sweep continues.
    if (!progressed || Date.now() - started > OFFBOARD_BUDGET_MS) return "busy";
  }
  await s.keys.deleteTenantKeys(tenantId);
  const seq = await recordAuditOnce(
    s,
    tenantId,
    BY,
    "tenant.offboarded",
    { type: "tenant", id: tenantId },
    { sweepId, suspendedAt: tenant.suspendedAt, noticeDays: s.settings.suspendedTenantNoticeDays },
    `tenant.offboarded:${tenantId}`,
  );
  if (seq === undefined) return "busy";
  const now = s.clock.now().toISOString();
  const written = await s.tenants.replace({ ...withoutMeta(tenant), contactEmail: null, webhookUrl: null, offboardedAt: now, updatedAt: now }, tenant._etag);
  return written ? "purged" : "busy";
}

export interface SweepOptions {
  pastDue?: boolean;
  /** Most items one run fans out (the rest wait for the next run). */
  maxItems?: number;
  batchSize?: number;
  log?: Log;
}

export interface SweepResult {
  sweepId: string;
  due: number;
  batches: number;
  oldestOverdueAt: string | null;
  skippedBecauseQueueBusy: boolean;
}

export function newSweepId(now: Date): string {
  return `sw-${now.toISOString().replace(/[-:.]/g, "").slice(0, 15)}-${randomBytes(3).toString("hex")}`;
}

/** One timer run: catch up receipts of earlier sweeps, find everything due, fan it out, record the heartbeat. */
export async function runRetentionSweep(s: Services, opts: SweepOptions = {}): Promise<SweepResult> {
  const started = s.clock.now();
  const sweeps = s.sweeps;
  await s.heartbeats.started(RETENTION_SWEEP, started, opts.pastDue ?? false);
  if (opts.pastDue) opts.log?.warn("retention.sweep-past-due", { startedAt: started.toISOString() });
  try {
    // Back-pressure: while earlier batches are still queued, queuing the same items again would only duplicate work.
    const queued = await s.queues.approximateCount(QUEUES.purge.name);

    for (const old of await sweeps.withoutReceipts(20)) {
      // Receipts of sweeps whose last batch was processed but whose receipts were not written (a crash), or whose
      // batches can no longer finish (a message that went to the poison queue: nothing is queued any more).
      const stale = queued === 0 && started.getTime() - Date.parse(old.startedAt) > 2 * RETENTION_INTERVAL_MINUTES * 60_000;
      if (sweepComplete(old) || stale) await writeReceipts(s, old.sweepId);
    }

    // One budget across all classes; while busy, only the oldest item of each (for the heartbeat) is looked up.
    let budget = queued === 0 ? (opts.maxItems ?? 20_000) : 1;
    const batchSize = opts.batchSize ?? 50;
    const due: Array<{ cls: ActiveRetentionClass; items: DueItem[] }> = [];
    let oldest: string | null = null;
    for (const cls of ACTIVE_RETENTION_CLASSES) {
      if (budget <= 0) break;
      const items = await HANDLERS[cls].findDue(s, started, queued === 0 ? budget : 1);
      if (items.length > 0) {
        due.push({ cls, items });
        if (queued === 0) budget -= items.length;
        if (cls !== "idempotency-record" && (oldest === null || items[0]!.dueAt < oldest)) oldest = items[0]!.dueAt;
      }
    }
    const total = due.reduce((n, d) => n + d.items.length, 0);

    const sweepId = newSweepId(started);
    let batches = 0;
    if (queued === 0 && total > 0) {
      const messages: PurgeBatchMessage[] = [];
      for (const { cls, items } of due) {
        for (let i = 0; i < items.length; i += batchSize) {
          messages.push({ sweepId, batch: messages.length, class: cls, items: items.slice(i, i + batchSize).map(({ tenantId, id }) => ({ tenantId, id })) });
        }
      }
      batches = messages.length;
      await sweeps.create({ sweepId, startedAt: started.toISOString(), pastDue: opts.pastDue ?? false, batches, items: total });
      for (const m of messages) await s.queues.send(QUEUES.purge.name, purgeBatchMessage, m);
    }
    const notices = await requeueLostNotices(s, started);
    const result = { sweepId, due: total, batches, oldestOverdueAt: oldest, skippedBecauseQueueBusy: queued > 0 && total > 0 };
    const counts = { due: total, batches, queuedBefore: queued, noticesRequeued: notices };
    await s.heartbeats.finished(RETENTION_SWEEP, s.clock.now(), "succeeded", counts, oldest ? new Date(oldest) : null);
    s.telemetry.metric("retention.due", total);
    opts.log?.info("retention.sweep", { sweepId, ...counts, oldestOverdueAt: oldest });
    return result;
  } catch (err) {
    await s.heartbeats.finished(RETENTION_SWEEP, s.clock.now(), "failed", {}, null).catch(() => undefined);
    throw err;
  }
}

/**
 * First-download notices whose queue message was lost (the download was counted, then the request failed before
 * the message was sent): queued again. The sender is told once; the consumer skips anything already told.
 */
async function requeueLostNotices(s: Services, now: Date): Promise<number> {
  // Leave recent downloads to the message their own request sent.
  const rows = await s.uploads.findUnsentFirstDownloadNoticesAcrossTenants(new Date(now.getTime() - 10 * 60_000), 500);
  for (const r of rows) await s.queues.send(QUEUES.notifications.name, notificationMessage, { kind: "first-download", tenantId: r.tenantId, uploadId: r.id });
  return rows.length;
}

/** A queue worker's share: purge one batch, record it on the sweep, and write receipts when the sweep is complete. */
export async function purgeBatch(s: Services, msg: PurgeBatchMessage, faults?: DeletionFaults): Promise<{ purged: number; skipped: number; busy: number }> {
  const handler = HANDLERS[msg.class];
  const counts = { purged: 0, skipped: 0, busy: 0 };
  for (const item of msg.items) counts[await handler.purge(s, item, msg.sweepId, faults)]++;
  s.telemetry.metric("retention.purged", counts.purged, { class: msg.class });
  const sweep = await s.sweeps.recordBatch(msg.sweepId, msg.batch, counts);
  // A batch from a sweep record that no longer exists: the work is done anyway.
  if (!sweep) return counts;
  if (sweepComplete(sweep) && !sweep.receiptsAt) await writeReceipts(s, msg.sweepId);
  return counts;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const MAX_IDS_IN_RECEIPT = 1000;

/** One receipt per tenant for what this sweep deleted, written once (retries find the existing entry). */
export async function writeReceipts(s: Services, sweepId: string): Promise<number> {
  const rows = await s.uploads.findDeletedBySweepAcrossTenants(sweepId);
  const byTenant = new Map<string, Array<{ id: string; reason: string }>>();
  for (const r of rows) {
    const list = byTenant.get(r.tenantId);
    if (list) list.push(r);
    else byTenant.set(r.tenantId, [r]);
  }
  let written = 0;
  let pending = false;
  for (const [tenantId, items] of byTenant) {
    const ids = items.map((i) => i.id);
    const digest = receiptDigest(ids, sha256);
    const seq = await recordAuditOnce(
      s,
      tenantId,
      BY,
      "retention.receipt",
      { type: "sweep", id: sweepId },
      {
        count: digest.count,
        idsHash: digest.idsHash,
        idsHashAlgorithm: "sha256 over the sorted upload ids joined by newlines",
        expired: items.filter((i) => i.reason === "expired").length,
        offboarded: items.filter((i) => i.reason === "tenant-offboarded").length,
        ids: [...ids].sort().slice(0, MAX_IDS_IN_RECEIPT),
        idsTruncated: ids.length > MAX_IDS_IN_RECEIPT,
      },
      `retention.receipt:${sweepId}`,
    );
    if (seq === undefined) pending = true;
    else written++;
  }
  // A receipt another worker is still writing: leave the sweep open, the next run's catch-up finishes it.
  if (!pending) await s.sweeps.markReceipts(sweepId, s.clock.now());
  return written;
}

export interface RetentionView {
  policies: Array<{ class: string; description: string; keptFor: string; action: string }>;
  uploads: {
    /** Past their expiry and about to be purged by the next sweep. */
    overdue: number;
    /** Uploads expiring on each of the next 33 days (UTC). */
    dueByDay: Array<{ date: string; count: number }>;
  };
  receipts: Array<{ sweepId: string; at: string; count: number; idsHash: string; auditSeq: number; ids: string[] }>;
}

const receiptDetails = z.object({ count: z.number(), idsHash: z.string(), ids: z.array(z.string()) });

/** GET /api/v1/retention: what is due when, and the receipts of what was deleted (newest first). */
export async function tenantRetention(s: Services, tenantId: string, receiptLimit = 20): Promise<RetentionView> {
  const now = s.clock.now();
  const calendar = dueCalendar(await s.uploads.liveExpiries(tenantId), now, 33);
  const receipts = await s.audit.latestOfAction(tenantId, "retention.receipt", receiptLimit);
  return {
    policies: Object.values(RETENTION_CLASSES).map((c) => ({ class: c.name, description: c.description, keptFor: c.keptFor, action: c.action })),
    uploads: { overdue: calendar.overdue, dueByDay: calendar.days },
    receipts: receipts.map((e) => {
      // Receipts are written by writeReceipts above; one of another shape was changed outside the service.
      const d = receiptDetails.parse(e.details);
      return { sweepId: e.target?.id ?? "", at: e.at, count: d.count, idsHash: d.idsHash, auditSeq: e.seq, ids: d.ids };
    }),
  };
}
