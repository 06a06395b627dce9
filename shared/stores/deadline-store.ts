/**
 * Deadline milestones in Cosmos (container "operations", one partition per tenant, type "deadline"): one document per
 * (clock, item, stage), so scheduling the same milestone again updates it instead of adding a second, and each notice
 * has one record of whether it was queued and done.
 */
import { createHash } from "node:crypto";
import type { Container } from "@azure/cosmos";
import { z } from "zod";
import { DEADLINE_STAGES, MILESTONE_STATUSES, NOTICE_REQUEUE_AFTER_MS } from "../domain/deadlines";
import { crossPartition, isConflict, isPreconditionFailed, queryAll, readItem } from "./cosmos";

const iso = z.iso.datetime();

export const milestoneSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("deadline"),
  /** The clock that owns it (a registered name, e.g. "dsr"). */
  clock: z.string().min(1).max(40),
  /** The owning record's id (e.g. a request id). */
  itemId: z.string().min(1).max(100),
  stage: z.enum(DEADLINE_STAGES),
  dueAt: iso,
  status: z.enum(MILESTONE_STATUSES),
  queuedAt: iso.nullable(),
  /** A worker sending the notice holds it until then, so two messages for one milestone send once. */
  sendingUntil: iso.nullable(),
  doneAt: iso.nullable(),
  /** What the owner's handler did: sent the notice, or found nothing to say (the item was closed meanwhile). */
  outcome: z.enum(["sent", "skipped"]).nullable(),
});
export type MilestoneDoc = z.infer<typeof milestoneSchema>;
export type StoredMilestone = MilestoneDoc & { _etag: string };

export function milestoneId(clock: string, itemId: string, stage: string): string {
  return "dl-" + createHash("sha256").update(`${clock}\n${itemId}\n${stage}`).digest("hex").slice(0, 40);
}

export class DeadlineStore {
  constructor(private readonly container: Container) {}

  get(tenantId: string, id: string): Promise<StoredMilestone | undefined> {
    return readItem(this.container, milestoneSchema, id, tenantId);
  }

  /** Creates the milestone; false when it exists already. */
  async create(doc: MilestoneDoc): Promise<boolean> {
    try {
      await this.container.items.create(milestoneSchema.parse(doc));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Replaces the milestone if unchanged since `etag`; false when another writer changed it first. */
  async replace(doc: MilestoneDoc, etag: string): Promise<boolean> {
    try {
      await this.container.item(doc.id, doc.tenantId).replace(milestoneSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err)) return false;
      throw err;
    }
  }

  /** The milestones of one item of one clock. */
  ofItem(tenantId: string, clock: string, itemId: string): Promise<StoredMilestone[]> {
    return queryAll(this.container, milestoneSchema.extend({ _etag: z.string() }), {
      query: "SELECT * FROM c WHERE c.tenantId = @tenantId AND c.type = 'deadline' AND c.clock = @clock AND c.itemId = @item",
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@clock", value: clock },
        { name: "@item", value: itemId },
      ],
    }, tenantId);
  }

  /**
   * Across all tenants, for the deadline watch only: milestones whose notice is to be queued at `now` (scheduled and
   * due, or queued long enough ago that the message must have been lost), earliest due first.
   */
  findToQueueAcrossTenants(now: Date, limit: number): Promise<StoredMilestone[]> {
    return crossPartition(this.container, milestoneSchema.extend({ _etag: z.string() }), {
      query:
        `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.type = 'deadline' AND ` +
        "((c.status = 'scheduled' AND c.dueAt <= @now) OR (c.status = 'queued' AND c.queuedAt <= @stale)) ORDER BY c.dueAt ASC",
      parameters: [
        { name: "@now", value: now.toISOString() },
        { name: "@stale", value: new Date(now.getTime() - NOTICE_REQUEUE_AFTER_MS).toISOString() },
      ],
    });
  }
}
