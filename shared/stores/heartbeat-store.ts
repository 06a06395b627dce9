/**
 * Sweep heartbeats: each timer sweep records when it started and finished, what it did and what is still
 * overdue, so health can tell a sweep that silently stopped from one that is keeping up.
 */
import type { Container } from "@azure/cosmos";
import { z } from "zod";
import { SYSTEM_TENANT } from "../config/resources";
import { isConflict, isPreconditionFailed, readItem, withoutMeta } from "./cosmos";

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
    return stored ? withoutMeta(stored) : undefined;
  }

  async started(sweep: string, at: Date, pastDue: boolean): Promise<void> {
    await this.change(sweep, (prev) => ({
      ...(prev ?? { sweep, lastFinishedAt: null, counts: {}, oldestOverdueAt: null }),
      id: this.id(sweep),
      tenantId: SYSTEM_TENANT,
      type: "heartbeat",
      sweep,
      lastStartedAt: at.toISOString(),
      lastOutcome: "running",
      lastPastDue: pastDue,
    }));
  }

  async finished(sweep: string, at: Date, outcome: "succeeded" | "failed", counts: Record<string, number>, oldestOverdueAt: Date | null): Promise<void> {
    await this.change(sweep, (prev) => ({
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
    }));
  }

  /**
   * Read-modify-write with the document's etag: two runs of a sweep recording at once (a timer and an operator's
   * trigger) cannot overwrite each other's fields with stale ones; the loser reads again and reapplies its change.
   */
  private async change(sweep: string, next: (prev: Heartbeat | undefined) => Heartbeat): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const stored = await readItem(this.container, heartbeatSchema, this.id(sweep), SYSTEM_TENANT);
      const prev = stored ? withoutMeta(stored) : undefined;
      try {
        if (stored) {
          await this.container.item(stored.id, SYSTEM_TENANT).replace(next(prev), { accessCondition: { type: "IfMatch", condition: stored._etag } });
        } else {
          await this.container.items.create(next(undefined));
        }
        return;
      } catch (err) {
        if (attempt >= 20 || !(isConflict(err) || isPreconditionFailed(err))) throw err;
        // Back off a random while, growing, so racing writers stop colliding.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * 2 ** Math.min(attempt, 5)));
      }
    }
  }

  /** Reachability, for health: reads the container's definition. */
  async probe(): Promise<void> {
    await this.container.read();
  }
}
