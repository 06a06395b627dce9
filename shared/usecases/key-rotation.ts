/**
 * Key-encryption key rotation. Rotating adds a new KEK version in the key provider and records it on the tenant
 * document, which every request reads, so every instance wraps new data keys with it at once; existing uploads
 * stay readable under their recorded version. A queue-driven job then re-wraps old data keys (and the tenant's
 * encrypted contact address) under the tenant's current version, a batch per message, without touching any
 * payload. When it runs out of work it checks once more a little later, for uploads created during the rotation.
 */
import { z } from "zod";
import { QUEUES } from "../config/resources";
import { decryptField, encryptField, fieldAssociatedData } from "../crypto";
import { AppError } from "../http/problem";
import type { Services } from "../services";
import { parseStored, withoutMeta } from "../stores/cosmos";
import { uploadDocSchema, type StoredUpload } from "../stores/upload-store";
import { rewrapUploadKey } from "./upload-keys";

export const rewrapMessage = z.object({
  tenantId: z.string(),
  /** The version the rotation that queued this made current (for the log; the job follows the tenant document). */
  version: z.string().optional(),
  /** The delayed last look after the job ran out of work. */
  final: z.boolean().optional(),
});
export type RewrapMessage = z.infer<typeof rewrapMessage>;

/** How long after running out of work the job looks once more (longer than a request that read the old version). */
export const REWRAP_FINAL_CHECK_SECONDS = 300;

export async function rotateTenantKek(s: Services, tenantId: string, by: { actor: string; requestId: string }): Promise<{ previousVersion: string; version: string }> {
  const tenant = await s.tenants.get(tenantId);
  if (!tenant) throw new AppError("not-found", "no tenant with this id");
  if (tenant.offboardedAt) throw new AppError("conflict", "the tenant was offboarded; it has no keys");
  const next = await s.keys.rotateKek(tenantId);
  let doc = tenant;
  for (let attempt = 0; ; attempt++) {
    try {
      await s.tenants.replace({ ...withoutMeta(doc), kekVersion: next.version, updatedAt: s.clock.now().toISOString() }, doc._etag);
      break;
    } catch (err) {
      if (!(err instanceof AppError) || err.problem !== "conflict" || attempt >= 5) throw err;
      const fresh = await s.tenants.get(tenantId);
      if (!fresh) throw new AppError("not-found", "no tenant with this id");
      doc = fresh;
    }
  }
  const previousVersion = doc.kekVersion;
  await s.audit.append({
    tenantId,
    actor: by.actor,
    action: "key.rotated",
    target: { type: "tenant", id: tenantId },
    requestId: by.requestId,
    details: { previousVersion, version: next.version },
  });
  await s.queues.send(QUEUES.rewrap.name, rewrapMessage, { tenantId, version: next.version });
  return { previousVersion, version: next.version };
}

const olderKeyQuery = (tenantId: string, version: string, select: string) => ({
  query: `SELECT ${select} FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' AND NOT IS_NULL(c.dataKey) AND c.dataKey.kekVersion != @version`,
  parameters: [
    { name: "@tenantId", value: tenantId },
    { name: "@version", value: version },
  ],
});

/** Re-wraps up to `batchSize` data keys onto the tenant's current KEK version. `remaining` says whether to run again. */
export async function rewrapBatch(s: Services, tenantId: string, batchSize = 100): Promise<{ rewrapped: number; remaining: boolean; version: string | null }> {
  const tenant = await s.tenants.get(tenantId);
  // An offboarded tenant has no keys and no uploads left to re-wrap.
  if (!tenant || tenant.offboardedAt) return { rewrapped: 0, remaining: false, version: null };
  const target = { version: tenant.kekVersion, key: await s.keys.kek(tenantId, tenant.kekVersion) };

  if (tenant.contactEmail && tenant.contactEmail.kekVersion !== target.version) {
    const aad = fieldAssociatedData(tenantId, tenantId, "contactEmail");
    const plain = decryptField(await s.keys.kek(tenantId, tenant.contactEmail.kekVersion), tenant.contactEmail.value, aad);
    await s.tenants
      .replace({ ...withoutMeta(tenant), contactEmail: { kekVersion: target.version, value: encryptField(target.key, plain, aad) } }, tenant._etag)
      .catch((err: unknown) => {
        // Changed meanwhile: the next batch tries again.
        if (!(err instanceof AppError)) throw err;
      });
  }

  const { resources } = await s.uploads.container.items
    .query<Record<string, unknown>>(olderKeyQuery(tenantId, target.version, `TOP ${Math.floor(batchSize)} *`), { partitionKey: tenantId })
    .fetchAll();
  let rewrapped = 0;
  let contended = 0;
  for (const raw of resources) {
    const doc: StoredUpload = { ...parseStored(uploadDocSchema, "uploads", raw), _etag: String(raw._etag) };
    if (!doc.dataKey) continue;
    // The data key never changes, so its new wrapping does not either; a record changed meanwhile (a download
    // counted, a deletion) is read again, and one that keeps changing is left for the next batch, not dropped.
    const dataKey = await rewrapUploadKey(s, doc, target);
    const r = await s.uploads.update(
      tenantId,
      doc.id,
      (fresh) => (fresh.dataKey && fresh.dataKey.kekVersion !== target.version ? { ...withoutMeta(fresh), dataKey } : undefined),
      { current: doc, attempts: 3 },
    );
    if (r.updated) rewrapped++;
    else if (r.reason === "contended") contended++;
  }
  if (rewrapped > 0) {
    await s.audit.append({
      tenantId,
      actor: "system:key-rewrap",
      action: "key.rewrapped",
      target: { type: "tenant", id: tenantId },
      details: { uploads: rewrapped, version: target.version },
    });
  }
  return { rewrapped, remaining: resources.length >= batchSize || contended > 0, version: target.version };
}

/** One queue message's work: a batch, then the next message (now, or the delayed last look). */
export async function runRewrapJob(s: Services, msg: RewrapMessage): Promise<Awaited<ReturnType<typeof rewrapBatch>>> {
  const r = await rewrapBatch(s, msg.tenantId);
  if (r.remaining) await s.queues.send(QUEUES.rewrap.name, rewrapMessage, { tenantId: msg.tenantId, version: msg.version });
  else if (!msg.final && r.version) {
    await s.queues.send(QUEUES.rewrap.name, rewrapMessage, { tenantId: msg.tenantId, version: msg.version, final: true }, { visibilityTimeoutSeconds: REWRAP_FINAL_CHECK_SECONDS });
  }
  return r;
}

export async function kekStatus(s: Services, tenantId: string): Promise<{ currentVersion: string; uploadsOnOlderVersions: number }> {
  const tenant = await s.tenants.get(tenantId);
  if (!tenant) throw new AppError("not-found", "no tenant with this id");
  const { resources } = await s.uploads.container.items.query<number>(olderKeyQuery(tenantId, tenant.kekVersion, "VALUE COUNT(1)"), { partitionKey: tenantId }).fetchAll();
  return { currentVersion: tenant.kekVersion, uploadsOnOlderVersions: resources[0] ?? 0 };
}
