/** Tenant documents in Cosmos (container "tenants", one partition per tenant, document id = tenant id). */
import type { Container } from "@azure/cosmos";
import { z } from "zod";
import { DEFAULT_LANGUAGE, LANGUAGES } from "../domain/language";
import { authorityCountries, DEFAULT_TIME_ZONE } from "../domain/tenant";
import { isTimeZone } from "../domain/time";
import { crossPartition, fetchPage, isConflict, isPreconditionFailed, readItem, type Page } from "./cosmos";
import { AppError } from "../errors";

export const tenantDocSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("tenant"),
  name: z.string(),
  /** The controller's contact (their DPO) for breach and request notices: an encrypted field, never plain. */
  contactEmail: z.object({ kekVersion: z.string(), value: z.string() }).nullable(),
  /**
   * The KEK version new data keys are wrapped with. Kept here, not only in Key Vault, so every instance sees a
   * rotation at once (a tenant document is read on every request; Key Vault's "current" is cached per instance).
   */
  kekVersion: z.string(),
  /**
   * Every KEK version the tenant has had, oldest first, ending with `kekVersion` (shared/domain/kek-versions.ts):
   * the order versions are compared by, since their ids are opaque. Absent on tenants created before it was kept.
   */
  kekVersions: z.array(z.string()).min(1).optional(),
  /** Held by the one rotation of this tenant's KEK that may run now, so rotations never interleave. */
  kekRotation: z.object({ id: z.string(), until: z.iso.datetime() }).nullable().default(null),
  supervisoryAuthority: z.object({ country: z.enum(authorityCountries), name: z.string() }),
  /** The language the tenant's notices and pages are written in. */
  language: z.enum(LANGUAGES).default(DEFAULT_LANGUAGE),
  /** An IANA time zone: deadlines that are dates end at the end of that day there; dates are shown in it. */
  timeZone: z.string().refine(isTimeZone, "must be an IANA time zone").default(DEFAULT_TIME_ZONE),
  /** Unused since webhook endpoints live in the webhook store (shared/stores/webhook-store.ts); kept readable for older documents. */
  webhookUrl: z.string().nullable().optional(),
  status: z.enum(["active", "suspended"]),
  apiKey: z.object({ id: z.string(), hash: z.string().regex(/^[0-9a-f]{64}$/), createdAt: z.iso.datetime() }),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  suspendedAt: z.iso.datetime().nullable(),
  /** Set when a suspended tenant's data was deleted after its notice period; the tenant cannot come back. */
  offboardedAt: z.iso.datetime().nullable().default(null),
});
export type TenantDoc = z.infer<typeof tenantDocSchema>;
export type StoredTenant = TenantDoc & { _etag: string };

export class TenantStore {
  constructor(private readonly container: Container) {}

  get(tenantId: string): Promise<StoredTenant | undefined> {
    return readItem(this.container, tenantDocSchema, tenantId, tenantId);
  }

  async create(doc: TenantDoc): Promise<void> {
    try {
      await this.container.items.create(tenantDocSchema.parse(doc));
    } catch (err) {
      if (isConflict(err)) throw new AppError("conflict", "a tenant with this id already exists");
      throw err;
    }
  }

  /**
   * Replaces the document if nobody changed it since `etag`. Returns false, writing nothing, when another writer
   * got there first (the caller reads again and decides).
   */
  async replace(doc: TenantDoc, etag: string): Promise<boolean> {
    try {
      await this.container.item(doc.id, doc.tenantId).replace(tenantDocSchema.parse(doc), { accessCondition: { type: "IfMatch", condition: etag } });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err)) return false;
      throw err;
    }
  }

  /** Operators list all tenants (a cross-partition query, admin-only), ordered by creation time so pages are stable. */
  list(limit: number, cursor: string | undefined): Promise<Page<TenantDoc>> {
    return fetchPage(this.container, tenantDocSchema, { query: "SELECT * FROM c WHERE c.type = 'tenant' ORDER BY c.createdAt ASC" }, {}, limit, cursor);
  }

  /**
   * Across all tenants, for the retention sweep only: suspended tenants not yet offboarded, with when they were
   * suspended (the sweep applies the notice period).
   */
  findSuspendedAcrossTenants(): Promise<Array<{ tenantId: string; suspendedAt: string | null }>> {
    return crossPartition(this.container, z.object({ tenantId: z.string(), suspendedAt: z.iso.datetime().nullable() }), {
      query: "SELECT c.tenantId, c.suspendedAt FROM c WHERE c.type = 'tenant' AND c.status = 'suspended' AND (NOT IS_DEFINED(c.offboardedAt) OR IS_NULL(c.offboardedAt))",
    });
  }

  /** Reachability, for health: reads the container's definition. */
  async probe(): Promise<void> {
    await this.container.read();
  }

  /** Every tenant's id, a page at a time (timer sweeps that visit each tenant). Offboarded tenants are included. */
  ids(limit: number, cursor: string | undefined): Promise<Page<{ tenantId: string }>> {
    return fetchPage(this.container, z.object({ tenantId: z.string() }), { query: "SELECT c.tenantId FROM c WHERE c.type = 'tenant' ORDER BY c.createdAt ASC" }, {}, limit, cursor);
  }
}
