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
  isDue,
  overdueBeyondGrace,
  receiptDigest,
  RETENTION_CLASSES,
  type RetentionClass,
  type RetentionClassName,
} from "../domain/retention";
import type { Log } from "../observability";
import type { Services } from "../services";
import { AppError } from "../http/problem";
import { isNotFound, parseStored, withoutMeta } from "../stores/cosmos";
import { sweepComplete, SweepStore } from "../stores/sweep-store";
import { deleteUpload, type DeletionFaults } from "./upload-deletion";
import { notificationMessage } from "./uploads";
import { declareSweep } from "../sweeps";

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

const ACTIVE_CLASSES = ["safedata", "suspended-tenant", "idempotency-record"] as const satisfies readonly RetentionClassName[];
type ActiveClass = (typeof ACTIVE_CLASSES)[number];

export const purgeBatchMessage = z.object({
  sweepId: z.string().min(1).max(100),
  batch: z.number().int().nonnegative(),
  class: z.enum(ACTIVE_CLASSES),
  items: z.array(z.object({ tenantId: z.string().max(100), id: z.string().max(200) })).min(1).max(100),
});
export type PurgeBatchMessage = z.infer<typeof purgeBatchMessage>;

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

const ACTOR = "system:retention";

async function crossPartition<T>(s: Services, container: "uploads" | "tenants" | "idempotency", query: string, parameters: Array<{ name: string; value: string }>): Promise<T[]> {
  const { resources } = await s.containers[container].items.query<T>({ query, parameters }).fetchAll();
  return resources;
}

const HANDLERS: Record<ActiveClass, ClassHandler> = {
  safedata: {
    findDue: (s, now, limit) =>
      // Expired uploads, and deletions a crashed run left unfinished (status "deleting" with no live lease).
      crossPartition<DueItem>(
        s,
        "uploads",
        `SELECT TOP ${limit} c.tenantId, c.id, c.expiresAt AS dueAt FROM c WHERE c.type = 'upload' AND ` +
          `((c.status IN ('awaiting-content', 'receiving', 'available') AND c.expiresAt <= @now) OR ` +
          `(c.status = 'deleting' AND (IS_NULL(c.deletion.leaseUntil) OR c.deletion.leaseUntil <= @now))) ORDER BY c.expiresAt ASC`,
        [{ name: "@now", value: now.toISOString() }],
      ),
    purge: async (s, item, sweepId, faults) => {
      const r = await deleteUpload(s, item.tenantId, item.id, "expired", { actor: ACTOR, requestId: null, sweepId }, faults);
      return r === "deleted" ? "purged" : r === "busy" || r === "in-progress" ? "busy" : "skipped";
    },
  },

  "suspended-tenant": {
    findDue: async (s, now, limit) => {
      const rows = await crossPartition<{ tenantId: string; suspendedAt: string }>(
        s,
        "tenants",
        "SELECT c.tenantId, c.suspendedAt FROM c WHERE c.type = 'tenant' AND c.status = 'suspended' AND (NOT IS_DEFINED(c.offboardedAt) OR IS_NULL(c.offboardedAt))",
        [],
      );
      const cls: RetentionClass = RETENTION_CLASSES["suspended-tenant"];
      return rows
        .filter((r) => isDue(cls, r, s.settings, now))
        .map((r) => ({ tenantId: r.tenantId, id: r.tenantId, due: cls.dueAt(r, s.settings)! }))
        .sort((a, b) => a.due.getTime() - b.due.getTime())
        .slice(0, limit)
        .map((r) => ({ tenantId: r.tenantId, id: r.id, dueAt: r.due.toISOString() }));
    },
    purge: (s, item, sweepId, faults) => offboardTenant(s, item.tenantId, sweepId, faults),
  },

  "idempotency-record": {
    findDue: async (s, now, limit) => {
      const rows = await crossPartition<{ tenantId: string; id: string; createdAt: string }>(
        s,
        "idempotency",
        `SELECT TOP ${limit} c.tenantId, c.id, c.createdAt FROM c WHERE c.type = 'idempotency' AND c.createdAt <= @cutoff ORDER BY c.createdAt ASC`,
        [{ name: "@cutoff", value: new Date(now.getTime() - IDEMPOTENCY_RECORD_LIFE_MS).toISOString() }],
      );
      const cls: RetentionClass = RETENTION_CLASSES["idempotency-record"];
      return rows.map((r) => ({ tenantId: r.tenantId, id: r.id, dueAt: cls.dueAt(r, s.settings)!.toISOString() }));
    },
    purge: async (s, item) => {
      try {
        await s.containers.idempotency.item(item.id, item.tenantId).delete();
        return "purged";
      } catch (err) {
        if (isNotFound(err)) return "skipped";
        throw err;
      }
    },
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
    const { resources } = await s.uploads.container.items
      .query<{ id: string }>({
        query: "SELECT TOP 200 c.id FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' AND NOT (c.status IN ('deleted', 'expired'))",
        parameters: [{ name: "@tenantId", value: tenantId }],
      }, { partitionKey: tenantId })
      .fetchAll();
    if (resources.length === 0) break;
    let progressed = false;
    for (const u of resources) {
      const r = await deleteUpload(s, tenantId, u.id, "tenant-offboarded", { actor: ACTOR, requestId: null, sweepId }, faults);
      if (r !== "busy" && r !== "in-progress") progressed = true;
    }
    // Uploads another worker holds a lease on, or a run out of time: the next sweep continues.
    if (!progressed || Date.now() - started > OFFBOARD_BUDGET_MS) return "busy";
  }
  await s.keys.deleteTenantKeys(tenantId);
  const seq = await s.audit.appendOnce(
    {
      tenantId,
      actor: ACTOR,
      action: "tenant.offboarded",
      target: { type: "tenant", id: tenantId },
      details: { sweepId, suspendedAt: tenant.suspendedAt, noticeDays: s.settings.suspendedTenantNoticeDays },
    },
    `tenant.offboarded:${tenantId}`,
  );
  if (seq === undefined) return "busy";
  const now = s.clock.now().toISOString();
  try {
    await s.tenants.replace({ ...withoutMeta(tenant), contactEmail: null, webhookUrl: null, offboardedAt: now, updatedAt: now }, tenant._etag);
  } catch (err) {
    if (err instanceof AppError && err.problem === "conflict") return "busy";
    throw err;
  }
  return "purged";
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
  const sweeps = new SweepStore(s.containers.operations);
  await s.heartbeats.started(RETENTION_SWEEP, started, opts.pastDue ?? false);
  if (opts.pastDue) opts.log?.warn("retention.sweep-past-due", { startedAt: started.toISOString() });
  try {
    // Back-pressure: while earlier batches are still queued, queuing the same items again would only duplicate work.
    const queued = (await s.queues.queue(QUEUES.purge.name).getProperties()).approximateMessagesCount ?? 0;

    for (const old of await sweeps.withoutReceipts(20)) {
      // Receipts of sweeps whose last batch was processed but whose receipts were not written (a crash), or whose
      // batches can no longer finish (a message that went to the poison queue: nothing is queued any more).
      const stale = queued === 0 && started.getTime() - Date.parse(old.startedAt) > 2 * RETENTION_INTERVAL_MINUTES * 60_000;
      if (sweepComplete(old) || stale) await writeReceipts(s, old.sweepId);
    }

    // One budget across all classes; while busy, only the oldest item of each (for the heartbeat) is looked up.
    let budget = queued === 0 ? (opts.maxItems ?? 20_000) : 1;
    const batchSize = opts.batchSize ?? 50;
    const due: Array<{ cls: ActiveClass; items: DueItem[] }> = [];
    let oldest: string | null = null;
    for (const cls of ACTIVE_CLASSES) {
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
  const rows = await crossPartition<{ tenantId: string; id: string }>(
    s,
    "uploads",
    "SELECT TOP 500 c.tenantId, c.id FROM c WHERE c.type = 'upload' AND c.status = 'available' AND c.notifyOnFirstDownload = true " +
      "AND NOT IS_NULL(c.firstDownloadAt) AND c.firstDownloadAt <= @settled AND IS_NULL(c.senderNotifiedAt)",
    // Leave recent downloads to the message their own request sent.
    [{ name: "@settled", value: new Date(now.getTime() - 10 * 60_000).toISOString() }],
  );
  for (const r of rows) await s.queues.send(QUEUES.notifications.name, notificationMessage, { kind: "first-download", tenantId: r.tenantId, uploadId: r.id });
  return rows.length;
}

/** A queue worker's share: purge one batch, record it on the sweep, and write receipts when the sweep is complete. */
export async function purgeBatch(s: Services, msg: PurgeBatchMessage, faults?: DeletionFaults): Promise<{ purged: number; skipped: number; busy: number }> {
  const handler = HANDLERS[msg.class];
  const counts = { purged: 0, skipped: 0, busy: 0 };
  for (const item of msg.items) counts[await handler.purge(s, item, msg.sweepId, faults)]++;
  s.telemetry.metric("retention.purged", counts.purged, { class: msg.class });
  const sweeps = new SweepStore(s.containers.operations);
  let sweep;
  try {
    sweep = await sweeps.recordBatch(msg.sweepId, msg.batch, counts);
  } catch (err) {
    if (isNotFound(err)) return counts; // a batch from a sweep record that no longer exists: the work is done anyway
    throw err;
  }
  if (sweepComplete(sweep) && !sweep.receiptsAt) await writeReceipts(s, msg.sweepId);
  return counts;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const MAX_IDS_IN_RECEIPT = 1000;

/** One receipt per tenant for what this sweep deleted, written once (retries find the existing entry). */
export async function writeReceipts(s: Services, sweepId: string): Promise<number> {
  const rows = await crossPartition<{ tenantId: string; id: string; reason: string }>(
    s,
    "uploads",
    "SELECT c.tenantId, c.id, c.deletion.reason AS reason FROM c WHERE c.type = 'upload' AND c.deletion.sweepId = @sweep AND NOT IS_NULL(c.deletion.completedAt)",
    [{ name: "@sweep", value: sweepId }],
  );
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
    const seq = await s.audit.appendOnce(
      {
        tenantId,
        actor: ACTOR,
        action: "retention.receipt",
        target: { type: "sweep", id: sweepId },
        details: {
          count: digest.count,
          idsHash: digest.idsHash,
          idsHashAlgorithm: "sha256 over the sorted upload ids joined by newlines",
          expired: items.filter((i) => i.reason === "expired").length,
          offboarded: items.filter((i) => i.reason === "tenant-offboarded").length,
          ids: [...ids].sort().slice(0, MAX_IDS_IN_RECEIPT),
          idsTruncated: ids.length > MAX_IDS_IN_RECEIPT,
        },
      },
      `retention.receipt:${sweepId}`,
    );
    if (seq === undefined) pending = true;
    else written++;
  }
  // A receipt another worker is still writing: leave the sweep open, the next run's catch-up finishes it.
  if (!pending) {
    await new SweepStore(s.containers.operations).markReceipts(sweepId, s.clock.now()).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
  return written;
}

export const retentionView = z.object({
  policies: z.array(z.object({ class: z.string(), description: z.string(), keptFor: z.string(), action: z.string() })),
  uploads: z.object({
    overdue: z.number().describe("Past their expiry and about to be purged by the next sweep"),
    dueByDay: z.array(z.object({ date: z.string(), count: z.number() })).describe("Uploads expiring on each of the next 33 days (UTC)"),
  }),
  receipts: z.array(
    z.object({ sweepId: z.string(), at: z.string(), count: z.number(), idsHash: z.string(), auditSeq: z.number(), ids: z.array(z.string()) }),
  ),
});

/** GET /api/v1/retention: what is due when, and the receipts of what was deleted. */
export async function tenantRetention(s: Services, tenantId: string, receiptLimit = 20): Promise<z.infer<typeof retentionView>> {
  const now = s.clock.now();
  const { resources: active } = await s.uploads.container.items
    .query<{ expiresAt: string }>({
      query: "SELECT c.expiresAt FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' AND c.status IN ('awaiting-content', 'receiving', 'available')",
      parameters: [{ name: "@tenantId", value: tenantId }],
    }, { partitionKey: tenantId })
    .fetchAll();
  const calendar = dueCalendar(active.map((a) => new Date(a.expiresAt)), now, 33);
  const { resources: receipts } = await s.containers.audit.items
    .query<Record<string, unknown>>({
      query: `SELECT TOP ${Math.floor(receiptLimit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'audit-entry' AND c.action = 'retention.receipt' ORDER BY c.seq DESC`,
      parameters: [{ name: "@tenantId", value: tenantId }],
    }, { partitionKey: tenantId })
    .fetchAll();
  const receiptSchema = z.object({
    seq: z.number(),
    at: z.string(),
    target: z.object({ id: z.string() }),
    details: z.object({ count: z.number(), idsHash: z.string(), ids: z.array(z.string()) }),
  });
  return {
    policies: Object.values(RETENTION_CLASSES).map((c) => ({ class: c.name, description: c.description, keptFor: c.keptFor, action: c.action })),
    uploads: { overdue: calendar.overdue, dueByDay: calendar.days },
    receipts: receipts.map((r) => {
      const e = parseStored(receiptSchema, "audit", r);
      return { sweepId: e.target.id, at: e.at, count: e.details.count, idsHash: e.details.idsHash, auditSeq: e.seq, ids: e.details.ids };
    }),
  };
}
