/**
 * Webhooks in Cosmos (container "webhooks", one partition per tenant): the tenant's endpoint (id "endpoint": its URL
 * and its signing secrets, each encrypted under the tenant's key-encryption key) and its deliveries, one document per
 * event, with every attempt (time, status, duration; never a body, never the receiver's answer).
 */
import type { Container, SqlParameter } from "@azure/cosmos";
import { z } from "zod";
import { WEBHOOK_EVENT_TYPES } from "../domain/webhooks";
import { crossPartition, isConflict, isNotFound, isPreconditionFailed, queryAll, queryPage, readItem, type Page } from "./cosmos";

const iso = z.iso.datetime();
const ENDPOINT_ID = "endpoint";

export const webhookSecretSchema = z.object({
  id: z.string(),
  /** `whsec_…`, encrypted with the tenant's KEK (field encryption, bound to the tenant and the secret id). */
  sealed: z.object({ kekVersion: z.string(), value: z.string() }),
  createdAt: iso,
  /** Null for the current secret; set when rotated, 24 hours on. */
  retiresAt: iso.nullable(),
});
export type WebhookSecret = z.infer<typeof webhookSecretSchema>;

export const webhookEndpointSchema = z.object({
  id: z.literal(ENDPOINT_ID),
  tenantId: z.string(),
  type: z.literal("webhook-endpoint"),
  url: z.string().max(2048),
  secrets: z.array(webhookSecretSchema).min(1).max(5),
  createdAt: iso,
  updatedAt: iso,
});
export type WebhookEndpointDoc = z.infer<typeof webhookEndpointSchema>;
export type StoredWebhookEndpoint = WebhookEndpointDoc & { _etag: string };

export const DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export const webhookAttemptSchema = z.object({
  n: z.number().int().positive(),
  at: iso,
  /** The receiver's HTTP status, or null when it did not answer. */
  status: z.number().int().nullable(),
  failure: z.string().max(40).optional(),
  durationMs: z.number().int().nonnegative(),
});

export const webhookDeliverySchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("webhook-delivery"),
  eventType: z.enum(WEBHOOK_EVENT_TYPES),
  /** The JSON body sent (ids and event types only). */
  body: z.string().max(16_384),
  createdAt: iso,
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.array(webhookAttemptSchema),
  /** When the next attempt is due (pending deliveries). */
  nextAttemptAt: iso.nullable(),
  /** A worker making attempt `attempt` holds the delivery until `until`, so two never send the same attempt at once. */
  lease: z.object({ attempt: z.number().int().positive(), until: iso }).nullable(),
  deliveredAt: iso.nullable(),
  failedAt: iso.nullable(),
  /** Why it failed for good: out of attempts, or the endpoint was removed. */
  failure: z.enum(["retries-exhausted", "no-endpoint"]).nullable(),
});
export type WebhookDeliveryDoc = z.infer<typeof webhookDeliverySchema>;
export type StoredWebhookDelivery = WebhookDeliveryDoc & { _etag: string };

export class WebhookStore {
  constructor(private readonly container: Container) {}

  getEndpoint(tenantId: string): Promise<StoredWebhookEndpoint | undefined> {
    return readItem(this.container, webhookEndpointSchema, ENDPOINT_ID, tenantId);
  }

  /**
   * Creates the endpoint (etag undefined) or replaces it if unchanged since `etag`. Returns false, writing nothing,
   * when another request created or changed it first.
   */
  async saveEndpoint(doc: WebhookEndpointDoc, etag: string | undefined): Promise<boolean> {
    const checked = webhookEndpointSchema.parse(doc);
    try {
      if (etag === undefined) await this.container.items.create(checked);
      else await this.container.item(ENDPOINT_ID, doc.tenantId).replace(checked, { accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isConflict(err) || isPreconditionFailed(err)) return false;
      throw err;
    }
  }

  /** Removes the endpoint; false when there was none. */
  async deleteEndpoint(tenantId: string): Promise<boolean> {
    try {
      await this.container.item(ENDPOINT_ID, tenantId).delete();
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  getDelivery(tenantId: string, id: string): Promise<StoredWebhookDelivery | undefined> {
    return readItem(this.container, webhookDeliverySchema, id, tenantId);
  }

  /** Creates a delivery; false when one with this id exists already (the same event emitted again). */
  async createDelivery(doc: WebhookDeliveryDoc): Promise<boolean> {
    try {
      await this.container.items.create(webhookDeliverySchema.parse(doc));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Replaces the delivery if unchanged since `etag`; returns the new etag, or undefined when another writer won. */
  async replaceDelivery(doc: WebhookDeliveryDoc, etag: string): Promise<string | undefined> {
    try {
      const r = await this.container.item(doc.id, doc.tenantId).replace(webhookDeliverySchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return r.etag;
    } catch (err) {
      if (isPreconditionFailed(err)) return undefined;
      throw err;
    }
  }

  /** How many of the tenant's deliveries are in each status, and when the last one was delivered and failed. */
  async deliveryStats(tenantId: string): Promise<Record<DeliveryStatus, number> & { lastDeliveredAt: string | null; lastFailedAt: string | null }> {
    const count = async (status: DeliveryStatus) => {
      const [n] = await queryAll(this.container, z.number().int(), {
        query: "SELECT VALUE COUNT(1) FROM c WHERE c.tenantId = @tenantId AND c.type = 'webhook-delivery' AND c.status = @status",
        parameters: [
          { name: "@tenantId", value: tenantId },
          { name: "@status", value: status },
        ],
      }, tenantId);
      return n ?? 0;
    };
    const latest = async (field: "deliveredAt" | "failedAt") => {
      const [t] = await queryAll(this.container, iso.nullable(), {
        query: `SELECT VALUE MAX(c.${field}) FROM c WHERE c.tenantId = @tenantId AND c.type = 'webhook-delivery'`,
        parameters: [{ name: "@tenantId", value: tenantId }],
      }, tenantId);
      return t ?? null;
    };
    const [pending, delivered, failed, lastDeliveredAt, lastFailedAt] = await Promise.all([count("pending"), count("delivered"), count("failed"), latest("deliveredAt"), latest("failedAt")]);
    return { pending, delivered, failed, lastDeliveredAt, lastFailedAt };
  }

  /** A page of the tenant's deliveries, newest first, optionally of one status. */
  listDeliveries(tenantId: string, opts: { status?: DeliveryStatus; limit: number; cursor?: string }): Promise<Page<WebhookDeliveryDoc>> {
    const filters = ["c.tenantId = @tenantId", "c.type = 'webhook-delivery'"];
    const parameters: SqlParameter[] = [{ name: "@tenantId", value: tenantId }];
    if (opts.status) {
      filters.push("c.status = @status");
      parameters.push({ name: "@status", value: opts.status });
    }
    return queryPage(this.container, webhookDeliverySchema, { query: `SELECT * FROM c WHERE ${filters.join(" AND ")} ORDER BY c.createdAt DESC`, parameters }, tenantId, opts.limit, opts.cursor);
  }

  /**
   * Across all tenants, for the webhook sweep only: pending deliveries whose next attempt was due at or before
   * `dueBefore` and that no worker holds (the catch-up for queue messages that were lost), oldest first.
   */
  async findOverdueAcrossTenants(dueBefore: Date, now: Date, limit: number): Promise<Array<{ tenantId: string; id: string; attempts: number }>> {
    const rows = await crossPartition(this.container, z.object({ tenantId: z.string(), id: z.string(), attempts: z.array(z.unknown()) }), {
      query:
        `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id, c.attempts FROM c WHERE c.type = 'webhook-delivery' ` +
        "AND c.status = 'pending' AND c.nextAttemptAt <= @due AND (IS_NULL(c.lease) OR c.lease.until <= @now) ORDER BY c.nextAttemptAt ASC",
      parameters: [
        { name: "@due", value: dueBefore.toISOString() },
        { name: "@now", value: now.toISOString() },
      ],
    });
    return rows.map((r) => ({ tenantId: r.tenantId, id: r.id, attempts: r.attempts.length }));
  }

  /** Reachability, for health: reads the container's definition. */
  async probe(): Promise<void> {
    await this.container.read();
  }
}
