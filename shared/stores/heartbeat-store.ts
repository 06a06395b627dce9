/**
 * Sweep heartbeats: each timer sweep records when it started and finished, what it did and what is still
 * overdue, so health can tell a sweep that silently stopped from one that is keeping up.
 */
import type { Container } from "@azure/cosmos";
import { z } from "zod";
import { SYSTEM_TENANT } from "../config/resources";
import { readItem } from "./cosmos";

export const heartbeatSchema = z.object({
  id: z.string(),
  tenantId: z.literal(SYSTEM_TENANT),
  type: z.literal("heartbeat"),
  sweep: z.string(),
  lastStartedAt: z.iso.datetime().nullable(),
  lastFinishedAt: z.iso.datetime().nullable(),
  lastOutcome: z.enum(["succeeded", "failed", "running"]),
  lastPastDue: z.boolean(),
  counts: z.record(z.string(), z.number()),
  oldestOverdueAt: z.iso.datetime().nullable(),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

export class HeartbeatStore {
  constructor(private readonly container: Container) {}

  private id(sweep: string): string {
    return `heartbeat:${sweep}`;
  }

  async get(sweep: string): Promise<Heartbeat | undefined> {
    const stored = await readItem(this.container, heartbeatSchema, this.id(sweep), SYSTEM_TENANT);
    if (!stored) return undefined;
    const { _etag: _ignored, ...hb } = stored;
    return hb;
  }

  async started(sweep: string, at: Date, pastDue: boolean): Promise<void> {
    const prev = await this.get(sweep);
    await this.put({
      ...(prev ?? { sweep, lastFinishedAt: null, counts: {}, oldestOverdueAt: null }),
      id: this.id(sweep),
      tenantId: SYSTEM_TENANT,
      type: "heartbeat",
      sweep,
      lastStartedAt: at.toISOString(),
      lastOutcome: "running",
      lastPastDue: pastDue,
    });
  }

  async finished(sweep: string, at: Date, outcome: "succeeded" | "failed", counts: Record<string, number>, oldestOverdueAt: Date | null): Promise<void> {
    const prev = await this.get(sweep);
    await this.put({
      id: this.id(sweep),
      tenantId: SYSTEM_TENANT,
      type: "heartbeat",
      sweep,
      lastStartedAt: prev?.lastStartedAt ?? at.toISOString(),
      lastPastDue: prev?.lastPastDue ?? false,
      // Health asks when the sweep last *finished*; a failed run does not count as finished work.
      lastFinishedAt: outcome === "succeeded" ? at.toISOString() : (prev?.lastFinishedAt ?? null),
      lastOutcome: outcome,
      counts,
      oldestOverdueAt: oldestOverdueAt?.toISOString() ?? null,
    });
  }

  private async put(hb: Heartbeat): Promise<void> {
    await this.container.items.upsert(hb);
  }
}
