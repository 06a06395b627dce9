/**
 * The retention sweep's records (container "operations", partition "_system"):
 *
 * - one document per sweep run: how many batches it fanned out, which of them finished, what they did, until when
 *   its batches hold their items (`claimUntil`), and whether its deletion receipts were written;
 * - one document per batch: the items the sweep queued in it and the same claim. A queue message names a batch
 *   (sweep id and number), never items: the worker works on what this record says, so a forged message names
 *   nothing that exists, and a duplicated one names work whose every step is idempotent. While a batch is neither
 *   done nor past its claim, its items are "in flight": the sweep neither queues them again nor counts beyond them,
 *   so back-pressure rests on these records, not on how many messages a queue holds (some may be invisible, held by
 *   a stuck worker, or never be worked);
 * - claims on single items a sweep re-queues outside batches (lost first-download notices), so a notice whose
 *   message is stuck is not queued again on every run.
 *
 * Workers record their batch with patches, so concurrent workers never overwrite each other.
 */
import type { Container } from "@azure/cosmos";
import { z } from "zod";
import { SYSTEM_TENANT } from "../config/resources";
import { isConflict, isNotFound, isPreconditionFailed, parseStored, queryAll, readItem } from "./cosmos";

const outcomeSchema = z.object({ purged: z.number(), skipped: z.number(), busy: z.number() });
export type BatchOutcome = z.infer<typeof outcomeSchema>;

export const sweepDocSchema = z.object({
  id: z.string(),
  tenantId: z.literal(SYSTEM_TENANT),
  type: z.literal("sweep"),
  sweepId: z.string(),
  startedAt: z.iso.datetime(),
  pastDue: z.boolean(),
  batches: z.number().int().nonnegative(),
  items: z.number().int().nonnegative(),
  /** Until when its batches hold their items; null on sweeps recorded before claims were kept. */
  claimUntil: z.iso.datetime().nullable().default(null),
  /** batch number -> outcome counts; a batch delivered twice is recorded once. */
  done: z.record(z.string(), outcomeSchema),
  receiptsAt: z.iso.datetime().nullable(),
});
export type SweepDoc = z.infer<typeof sweepDocSchema>;

const itemSchema = z.object({ tenantId: z.string(), id: z.string() });
export type BatchItem = z.infer<typeof itemSchema>;

export const sweepBatchSchema = z.object({
  id: z.string(),
  tenantId: z.literal(SYSTEM_TENANT),
  type: z.literal("sweep-batch"),
  sweepId: z.string(),
  batch: z.number().int().nonnegative(),
  /** The retention class (shared/domain/retention.ts) its items belong to. */
  class: z.string(),
  items: z.array(itemSchema),
  claimUntil: z.iso.datetime(),
  doneAt: z.iso.datetime().nullable(),
});
export type SweepBatch = z.infer<typeof sweepBatchSchema>;

const claimSchema = z.object({
  id: z.string(),
  tenantId: z.literal(SYSTEM_TENANT),
  type: z.literal("claim"),
  until: z.iso.datetime(),
});

const docId = (sweepId: string) => `sweep:${sweepId}`;
const batchId = (sweepId: string, batch: number) => `sweep-batch:${sweepId}:${batch}`;

export class SweepStore {
  constructor(private readonly container: Container) {}

  /**
   * Records a sweep and its batches (before any message naming them is sent). Batch numbers are the positions in
   * `batches`; each holds its items until `claimUntil`.
   */
  async create(
    doc: Omit<SweepDoc, "id" | "tenantId" | "type" | "done" | "receiptsAt" | "batches" | "claimUntil"> & { claimUntil: string },
    batches: ReadonlyArray<{ class: string; items: BatchItem[] }>,
  ): Promise<void> {
    await this.container.items.create({ ...doc, id: docId(doc.sweepId), tenantId: SYSTEM_TENANT, type: "sweep", batches: batches.length, done: {}, receiptsAt: null });
    for (const [n, b] of batches.entries()) {
      const batch: SweepBatch = {
        id: batchId(doc.sweepId, n),
        tenantId: SYSTEM_TENANT,
        type: "sweep-batch",
        sweepId: doc.sweepId,
        batch: n,
        class: b.class,
        items: b.items,
        claimUntil: doc.claimUntil,
        doneAt: null,
      };
      await this.container.items.create(batch);
    }
  }

  /** A batch as the sweep recorded it, or undefined when there is no such batch (a forged or long-gone message). */
  async batch(sweepId: string, batch: number): Promise<SweepBatch | undefined> {
    const stored = await readItem(this.container, sweepBatchSchema, batchId(sweepId, batch), SYSTEM_TENANT);
    if (!stored) return undefined;
    const { _etag: _ignored, ...doc } = stored;
    return doc;
  }

  /** Items held by batches that are neither done nor past their claim at `now`, with their class. */
  async claimedItems(now: Date): Promise<Array<{ class: string; items: BatchItem[] }>> {
    return queryAll(this.container, z.object({ class: z.string(), items: z.array(itemSchema) }), {
      query: "SELECT c.class, c.items FROM c WHERE c.tenantId = @tenantId AND c.type = 'sweep-batch' AND IS_NULL(c.doneAt) AND c.claimUntil > @now",
      parameters: [
        { name: "@tenantId", value: SYSTEM_TENANT },
        { name: "@now", value: now.toISOString() },
      ],
    }, SYSTEM_TENANT);
  }

  /** Lets a batch's items go at once (its message could not be sent): the next sweep may queue them again. */
  async releaseBatch(sweepId: string, batch: number, at: Date): Promise<void> {
    try {
      await this.container.item(batchId(sweepId, batch), SYSTEM_TENANT).patch([{ op: "set", path: "/claimUntil", value: at.toISOString() }]);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Records one finished batch, on the batch (its items are no longer in flight) and on the sweep. Returns the sweep
   * as it now stands, or undefined when there is no such sweep.
   */
  async recordBatch(sweepId: string, batch: number, outcome: BatchOutcome, at: Date): Promise<SweepDoc | undefined> {
    try {
      await this.container.item(batchId(sweepId, batch), SYSTEM_TENANT).patch([{ op: "set", path: "/doneAt", value: at.toISOString() }]);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      const { resource } = await this.container.item(docId(sweepId), SYSTEM_TENANT).patch<Record<string, unknown>>([{ op: "set", path: `/done/b${batch}`, value: outcome }]);
      return parseStored(sweepDocSchema, this.container.id, resource);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Marks the sweep's receipts as written and removes its batch records, whose work is over: a message that still
   * names one of them afterwards names nothing (nothing happens when there is no such sweep).
   */
  async markReceipts(sweepId: string, at: Date): Promise<void> {
    try {
      await this.container.item(docId(sweepId), SYSTEM_TENANT).patch([{ op: "set", path: "/receiptsAt", value: at.toISOString() }]);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const ids = await queryAll(this.container, z.object({ id: z.string() }), {
      query: "SELECT c.id FROM c WHERE c.tenantId = @tenantId AND c.type = 'sweep-batch' AND c.sweepId = @sweepId",
      parameters: [
        { name: "@tenantId", value: SYSTEM_TENANT },
        { name: "@sweepId", value: sweepId },
      ],
    }, SYSTEM_TENANT);
    for (const { id } of ids) {
      try {
        await this.container.item(id, SYSTEM_TENANT).delete();
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  /** Sweeps whose receipts are not written yet, oldest first (the catch-up for crashed or stuck sweeps). */
  withoutReceipts(limit: number): Promise<SweepDoc[]> {
    return queryAll(this.container, sweepDocSchema, {
      query: `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'sweep' AND IS_NULL(c.receiptsAt) ORDER BY c.startedAt ASC`,
      parameters: [{ name: "@tenantId", value: SYSTEM_TENANT }],
    }, SYSTEM_TENANT);
  }

  /**
   * Claims `key` until `until`, unless a claim on it is still running at `now`. Returns whether this caller got it
   * (of two racing callers, one does).
   */
  async claim(key: string, now: Date, until: Date): Promise<boolean> {
    const id = `claim:${key}`;
    const existing = await readItem(this.container, claimSchema, id, SYSTEM_TENANT);
    if (existing && Date.parse(existing.until) > now.getTime()) return false;
    const doc = { id, tenantId: SYSTEM_TENANT, type: "claim" as const, until: until.toISOString() };
    try {
      if (existing) await this.container.item(id, SYSTEM_TENANT).replace(doc, { accessCondition: { type: "IfMatch", condition: existing._etag } });
      else await this.container.items.create(doc);
      return true;
    } catch (err) {
      if (isConflict(err) || isPreconditionFailed(err)) return false;
      throw err;
    }
  }
}

export function sweepComplete(doc: SweepDoc): boolean {
  return Object.keys(doc.done).length >= doc.batches;
}
