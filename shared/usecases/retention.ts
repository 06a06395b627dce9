/**
 * The retention sweep: the 32-day purge and every other retention class, applied by a timer nobody has to
 * remember. Each run is a catch-up query ("everything due by now that is not done, oldest first"), so a missed or
 * crashed run is simply finished by the next one.
 *
 * The timer does not purge: it finds due items and fans them out to the purge-batches queue, a batch per message,
 * so no run approaches the function timeout whatever the backlog. Each batch is recorded (shared/stores/
 * sweep-store.ts) before its message is sent, and the message names only the record. A worker acts on what is
 * stored, never on what a message says: it reads the batch the sweep recorded, then re-reads every item and acts
 * only when the item's own state says it is due (shared/domain/retention.ts), recording the true reason. So a forged
 * message does nothing, a duplicated one repeats idempotent steps, and an item that changed since it was queued is
 * left alone. Workers purge each item with idempotent steps (see upload-deletion.ts) under a per-item lease, so
 * concurrent or repeated batches never purge an item twice.
 *
 * Back-pressure rests on those records too: a batch holds its items until it is done or its claim runs out
 * (BATCH_CLAIM_MS). The sweep never queues an item held by a batch, and queues at most `maxItems` minus the items in
 * flight; a message that is held invisible or never worked holds back only its own items, and only until its claim
 * runs out, after which a later sweep queues them again.
 *
 * When every batch of a sweep is done (or the ones left have run out of their claim), each affected tenant gets a
 * deletion receipt in its audit log: the ids, their count and a hash over them, as evidence for the controller
 * (GDPR Art. 28(3)(g)).
 */
import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import { QUEUES } from "../config/resources";
import {
  dueCalendar,
  IDEMPOTENCY_RECORD_LIFE_MS,
  isDue,
  overdueBeyondGrace,
  receiptDigest,
  RETENTION_CLASSES,
  uploadPurgeDue,
  type RetentionClass,
} from "../domain/retention";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import { sweepComplete, type BatchItem, type SweepDoc } from "../stores/sweep-store";
import type { DeletionReason, StoredUpload } from "../stores/upload-store";
import { declareSweep } from "../sweeps";
import { recordAuditOnce, type Actor } from "./audit-trail";
import { ACTIVE_RETENTION_CLASSES, notificationMessage, purgeBatchMessage, type ActiveRetentionClass, type PurgeBatchMessage } from "./messages";
import { deleteUpload, type DeletionFaults } from "./upload-deletion";
import { erasedBySweep, findDueConsentItems, purgeConsentItem } from "./consent-retention";
import { eraseClosedRequest, findClosedRequestsDue } from "./subject-requests";
import { findExpiredPackages, packagesPurgedBySweep, purgePackage } from "./subject-request-access";

export const RETENTION_SWEEP = "retention";
export const RETENTION_INTERVAL_MINUTES = 15;
/**
 * How long a batch holds its items. Longer than a batch's message can stay alive while it is retried (five tries,
 * host.json maxDequeueCount, each normally far shorter than the 30-minute function timeout), short enough that
 * items of a message that is stuck or lost are queued again the same day. Health turns unhealthy meanwhile, since
 * such items are overdue beyond the grace period.
 */
export const BATCH_CLAIM_MS = 2 * 60 * 60_000;
/** After a batch's claim ran out, how long before its sweep's receipts are written (a worker may be on its last item). */
const RECEIPT_MARGIN_MS = 10 * 60_000;
/** How long a re-queued first-download notice is not queued again (its message may be slow or stuck). */
const NOTICE_CLAIM_MS = 60 * 60_000;
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
  /** Re-reads the item and purges it only if its stored state says it is due now ("skipped" otherwise). */
  purge(s: Services, item: BatchItem, sweepId: string, faults?: DeletionFaults): Promise<PurgeOutcome>;
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
      // Only if the record, as read for the write that shreds its key, says it is due (uploadPurgeDue): a live
      // upload not yet expired, or one already deleted, is left alone. A live upload past its expiry is purged as
      // expired; a deletion left unfinished keeps the reason it was started with (a sender's request stays one).
      const due = (u: StoredUpload) => uploadPurgeDue(u, s.settings, s.clock.now());
      const r = await deleteUpload(s, item.tenantId, item.id, "expired", { ...BY, sweepId }, faults, due);
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
    purge: async (s, item) => {
      // Only a record that is at least 24 hours old as stored now; one written again since is a new record.
      const cutoff = new Date(s.clock.now().getTime() - IDEMPOTENCY_RECORD_LIFE_MS);
      return (await s.idempotency.deleteIfCreatedBefore(item.tenantId, item.id, cutoff)) ? "purged" : "skipped";
    },
  },

  "consent-evidence": {
    // Histories whose evidence period is over (and recordings or removals a crash left unfinished, an hour on):
    // consent-retention.ts, which decides each item again from the events themselves.
    findDue: (s, now, limit) => findDueConsentItems(s, now, limit),
    purge: (s, item, sweepId) => purgeConsentItem(s, item, sweepId, BY),
  },

  "closed-request": {
    // Data-subject requests closed EVIDENCE_RETENTION_YEARS ago: their data key is destroyed and personal fields
    // cleared; the anonymous record stays (subject-requests.ts decides each again from the stored request).
    findDue: (s, now, limit) => findClosedRequestsDue(s, now, limit),
    purge: (s, item, sweepId) => eraseClosedRequest(s, item, sweepId),
  },

  "dsr-export": {
    // Access and portability packages whose DSR_EXPORT_DAYS are over: their key is destroyed and their blobs deleted
    // (subject-request-access.ts decides each again from the stored package record).
    findDue: (s, now, limit) => findExpiredPackages(s, now, limit),
    purge: (s, item, sweepId) => purgePackage(s, item, sweepId),
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
  // Only once the notice period is over, as the stored suspension says (it cannot be reactivated after that, so
  // the decision cannot be undone under us); a tenant suspended a moment ago keeps everything.
  if (!isDue(RETENTION_CLASSES["suspended-tenant"], { suspendedAt: tenant.suspendedAt }, s.settings, s.clock.now())) return "skipped";
  const started = Date.now();
  for (;;) {
    const ids = await s.uploads.unfinishedIds(tenantId, 200);
    if (ids.length === 0) break;
    let progressed = false;
    for (const id of ids) {
      const r = await deleteUpload(s, tenantId, id, await offboardingReason(s, tenantId, id), { ...BY, sweepId }, faults);
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
  // Its webhook endpoint (URL and signing secrets) goes with its contact details.
  await s.webhooks.deleteEndpoint(tenantId);
  const written = await s.tenants.replace({ ...withoutMeta(tenant), contactEmail: null, webhookUrl: null, offboardedAt: now, updatedAt: now }, tenant._etag);
  return written ? "purged" : "busy";
}

/** Why an offboarding deletes an upload: its own 32 days may already be over, which is then the true reason. */
async function offboardingReason(s: Services, tenantId: string, uploadId: string): Promise<DeletionReason> {
  const u = await s.uploads.get(tenantId, uploadId);
  return u && u.status !== "deleting" && uploadPurgeDue(u, s.settings, s.clock.now()) ? "expired" : "tenant-offboarded";
}

export interface SweepOptions {
  pastDue?: boolean;
  /** Most items in flight at once: queued by this run plus those held by earlier batches (the rest wait). */
  maxItems?: number;
  batchSize?: number;
  log?: Log;
}

export interface SweepResult {
  sweepId: string;
  /** Items this run queued. */
  due: number;
  batches: number;
  /** Items earlier batches still hold (not queued again). */
  inFlight: number;
  oldestOverdueAt: string | null;
}

export function newSweepId(now: Date): string {
  return `sw-${now.toISOString().replace(/[-:.]/g, "").slice(0, 15)}-${randomBytes(3).toString("hex")}`;
}

/** When a sweep's batches stop holding their items (sweeps recorded before claims: two intervals after it began). */
function claimEnd(sweep: SweepDoc): number {
  return sweep.claimUntil ? Date.parse(sweep.claimUntil) : Date.parse(sweep.startedAt) + 2 * RETENTION_INTERVAL_MINUTES * 60_000;
}

const itemKey = (cls: string, item: BatchItem) => `${cls}|${item.tenantId}|${item.id}`;

/** One timer run: catch up receipts of earlier sweeps, find everything due, fan it out, record the heartbeat. */
export async function runRetentionSweep(s: Services, opts: SweepOptions = {}): Promise<SweepResult> {
  const started = s.clock.now();
  const sweeps = s.sweeps;
  await s.heartbeats.started(RETENTION_SWEEP, started, opts.pastDue ?? false);
  if (opts.pastDue) opts.log?.warn("retention.sweep-past-due", { startedAt: started.toISOString() });
  try {
    for (const old of await sweeps.withoutReceipts(20)) {
      // Receipts of sweeps whose last batch was processed but whose receipts were not written (a crash), or whose
      // unfinished batches ran out of their claim (a message stuck, lost or in the poison queue): their workers
      // stop at the end of the claim, and a later sweep queues and receipts what they left.
      const stale = started.getTime() > claimEnd(old) + RECEIPT_MARGIN_MS;
      if (sweepComplete(old) || stale) await writeReceipts(s, old.sweepId);
    }

    // Back-pressure from the stored batches: items they hold are in flight and count against the budget.
    const claimed = new Set<string>();
    for (const b of await sweeps.claimedItems(started)) for (const item of b.items) claimed.add(itemKey(b.class, item));
    const maxItems = opts.maxItems ?? 20_000;
    let budget = Math.max(0, maxItems - claimed.size);
    const batchSize = opts.batchSize ?? 50;
    const batches: Array<{ class: ActiveRetentionClass; items: BatchItem[] }> = [];
    let oldest: string | null = null;
    let total = 0;
    for (const cls of ACTIVE_RETENTION_CLASSES) {
      const held = [...claimed].filter((k) => k.startsWith(`${cls}|`)).length;
      // Oldest first; the held ones come back too (and are the oldest), so ask for that many more.
      const found = await HANDLERS[cls].findDue(s, started, Math.max(1, budget + held));
      if (found.length > 0 && cls !== "idempotency-record" && (oldest === null || found[0]!.dueAt < oldest)) oldest = found[0]!.dueAt;
      const fresh = found.filter((i) => !claimed.has(itemKey(cls, i))).slice(0, budget);
      budget -= fresh.length;
      total += fresh.length;
      for (let i = 0; i < fresh.length; i += batchSize) {
        batches.push({ class: cls, items: fresh.slice(i, i + batchSize).map(({ tenantId, id }) => ({ tenantId, id })) });
      }
    }

    const sweepId = newSweepId(started);
    if (batches.length > 0) {
      const claimUntil = new Date(started.getTime() + BATCH_CLAIM_MS).toISOString();
      await sweeps.create({ sweepId, startedAt: started.toISOString(), pastDue: opts.pastDue ?? false, items: total, claimUntil }, batches);
      for (const [n, b] of batches.entries()) {
        try {
          await s.queues.send(QUEUES.purge.name, purgeBatchMessage, { sweepId, batch: n, class: b.class });
        } catch (err) {
          // The queue is unreachable: let the batches that were not sent go, so the next run queues their items.
          for (let m = n; m < batches.length; m++) await sweeps.releaseBatch(sweepId, m, started).catch(() => undefined);
          throw err;
        }
      }
    }
    const notices = await requeueLostNotices(s, started);
    const result: SweepResult = { sweepId, due: total, batches: batches.length, inFlight: claimed.size, oldestOverdueAt: oldest };
    const counts = { due: total, batches: batches.length, inFlight: claimed.size, noticesRequeued: notices };
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
  let queued = 0;
  for (const r of rows) {
    // One re-queued message per notice at a time: a message that is slow or stuck is not joined by another each run.
    if (!(await s.sweeps.claim(`notice:${r.tenantId}:${r.id}`, now, new Date(now.getTime() + NOTICE_CLAIM_MS)))) continue;
    await s.queues.send(QUEUES.notifications.name, notificationMessage, { kind: "first-download", tenantId: r.tenantId, uploadId: r.id });
    queued++;
  }
  return queued;
}

export interface BatchResult {
  purged: number;
  skipped: number;
  busy: number;
  /** Why nothing was done: no batch recorded under this name (forged, or its sweep is closed), or it is done. */
  ignored?: "unknown-batch" | "already-done";
  /** Items left when the batch's claim ran out (a later sweep queues them again). */
  lapsed?: number;
}

/**
 * A queue worker's share: purge the batch the message names, as the sweep recorded it, record it on the sweep, and
 * write receipts when the sweep is complete. Each item is re-read and purged only if it is due now.
 */
export async function purgeBatch(s: Services, msg: PurgeBatchMessage, faults?: DeletionFaults): Promise<BatchResult> {
  const counts = { purged: 0, skipped: 0, busy: 0 };
  const batch = await s.sweeps.batch(msg.sweepId, msg.batch);
  if (!batch || batch.class !== msg.class) return { ...counts, ignored: "unknown-batch" };
  if (batch.doneAt) return { ...counts, ignored: "already-done" };
  const handler = HANDLERS[msg.class];
  const claimUntil = Date.parse(batch.claimUntil);
  let lapsed = 0;
  for (const [i, item] of batch.items.entries()) {
    // Past its claim the batch's items belong to later sweeps: stop, and leave the batch open (its sweep is stale).
    if (s.clock.now().getTime() >= claimUntil) {
      lapsed = batch.items.length - i;
      break;
    }
    counts[await handler.purge(s, item, msg.sweepId, faults)]++;
  }
  s.telemetry.metric("retention.purged", counts.purged, { class: msg.class });
  if (lapsed > 0) return { ...counts, lapsed };
  const sweep = await s.sweeps.recordBatch(msg.sweepId, msg.batch, counts, s.clock.now());
  // A batch whose sweep record no longer exists: the work is done anyway.
  if (sweep && sweepComplete(sweep) && !sweep.receiptsAt) await writeReceipts(s, msg.sweepId);
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
        // The true reason of each deletion: its 32 days were over, its tenant was offboarded, or someone asked
        // for it (a deletion on request that this sweep finished after it was interrupted).
        expired: items.filter((i) => i.reason === "expired").length,
        offboarded: items.filter((i) => i.reason === "tenant-offboarded").length,
        onRequest: items.filter((i) => i.reason === "sender-request" || i.reason === "subject-request").length,
        ids: [...ids].sort().slice(0, MAX_IDS_IN_RECEIPT),
        idsTruncated: ids.length > MAX_IDS_IN_RECEIPT,
      },
      `retention.receipt:${sweepId}`,
    );
    if (seq === undefined) pending = true;
    else written++;
  }
  for (const [tenantId, erased] of await erasedBySweep(s, sweepId)) {
    const ids = [...erased.eventIds].sort();
    const digest = receiptDigest(ids, sha256);
    const seq = await recordAuditOnce(
      s,
      tenantId,
      BY,
      "retention.receipt",
      { type: "sweep", id: `${sweepId}:consent-evidence` },
      {
        class: "consent-evidence",
        count: digest.count,
        histories: erased.histories,
        idsHash: digest.idsHash,
        idsHashAlgorithm: "sha256 over the sorted consent event ids joined by newlines",
        ids: ids.slice(0, MAX_IDS_IN_RECEIPT),
        idsTruncated: ids.length > MAX_IDS_IN_RECEIPT,
      },
      `retention.receipt:consent-evidence:${sweepId}`,
    );
    if (seq === undefined) pending = true;
    else written++;
  }
  for (const [tenantId, requestIds] of await packagesPurgedBySweep(s, sweepId)) {
    const ids = [...requestIds].sort();
    const digest = receiptDigest(ids, sha256);
    const seq = await recordAuditOnce(
      s,
      tenantId,
      BY,
      "retention.receipt",
      { type: "sweep", id: `${sweepId}:dsr-export` },
      {
        class: "dsr-export",
        count: digest.count,
        idsHash: digest.idsHash,
        idsHashAlgorithm: "sha256 over the sorted request ids of the purged packages joined by newlines",
        ids: ids.slice(0, MAX_IDS_IN_RECEIPT),
        idsTruncated: ids.length > MAX_IDS_IN_RECEIPT,
      },
      `retention.receipt:dsr-export:${sweepId}`,
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
