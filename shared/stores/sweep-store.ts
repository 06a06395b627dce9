/**
 * One document per retention sweep run (container "operations", partition "_system"): how many batches it fanned
 * out, which of them finished, what they did, and whether its deletion receipts were written. Workers record
 * their batch with a patch, so concurrent workers never overwrite each other.
 */
import type { Container } from "@azure/cosmos";
import { z } from "zod";
import { SYSTEM_TENANT } from "../config/resources";
import { isNotFound, parseStored, queryAll } from "./cosmos";

export const sweepDocSchema = z.object({
  id: z.string(),
  tenantId: z.literal(SYSTEM_TENANT),
  type: z.literal("sweep"),
  sweepId: z.string(),
  startedAt: z.iso.datetime(),
  pastDue: z.boolean(),
  batches: z.number().int().nonnegative(),
  items: z.number().int().nonnegative(),
  /** batch number -> outcome counts; a batch delivered twice is recorded once. */
  done: z.record(z.string(), z.object({ purged: z.number(), skipped: z.number(), busy: z.number() })),
  receiptsAt: z.iso.datetime().nullable(),
});
export type SweepDoc = z.infer<typeof sweepDocSchema>;

const docId = (sweepId: string) => `sweep:${sweepId}`;

export class SweepStore {
  constructor(private readonly container: Container) {}

  async create(doc: Omit<SweepDoc, "id" | "tenantId" | "type" | "done" | "receiptsAt">): Promise<void> {
    await this.container.items.create({ ...doc, id: docId(doc.sweepId), tenantId: SYSTEM_TENANT, type: "sweep", done: {}, receiptsAt: null });
  }

  /** Records one finished batch; returns the sweep as it now stands, or undefined when there is no such sweep. */
  async recordBatch(sweepId: string, batch: number, outcome: { purged: number; skipped: number; busy: number }): Promise<SweepDoc | undefined> {
    try {
      const { resource } = await this.container.item(docId(sweepId), SYSTEM_TENANT).patch<Record<string, unknown>>([{ op: "set", path: `/done/b${batch}`, value: outcome }]);
      return parseStored(sweepDocSchema, this.container.id, resource);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Marks the sweep's receipts as written (nothing happens when there is no such sweep). */
  async markReceipts(sweepId: string, at: Date): Promise<void> {
    try {
      await this.container.item(docId(sweepId), SYSTEM_TENANT).patch([{ op: "set", path: "/receiptsAt", value: at.toISOString() }]);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Sweeps whose receipts are not written yet, oldest first (the catch-up for crashed or stuck sweeps). */
  withoutReceipts(limit: number): Promise<SweepDoc[]> {
    return queryAll(this.container, sweepDocSchema, {
      query: `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'sweep' AND IS_NULL(c.receiptsAt) ORDER BY c.startedAt ASC`,
      parameters: [{ name: "@tenantId", value: SYSTEM_TENANT }],
    }, SYSTEM_TENANT);
  }
}

export function sweepComplete(doc: SweepDoc): boolean {
  return Object.keys(doc.done).length >= doc.batches;
}
