/**
 * Key-encryption key rotation. Rotating adds a new KEK version that wraps every new data key at once; existing
 * uploads stay readable under their recorded version. A queue-driven job then re-wraps old data keys (and the
 * tenant's encrypted contact address) under the new version, a batch per message, without touching any payload.
 */
import { z } from "zod";
import { QUEUES } from "../config/resources";
import { decryptField, encryptField, fieldAssociatedData } from "../crypto";
import { AppError } from "../http/problem";
import type { Services } from "../services";
import { parseStored } from "../stores/cosmos";
import { uploadDocSchema, withoutMeta, type StoredUpload } from "../stores/upload-store";
import { rewrapUploadKey } from "./upload-keys";

export const rewrapMessage = z.object({ tenantId: z.string() });
export type RewrapMessage = z.infer<typeof rewrapMessage>;

export async function rotateTenantKek(s: Services, tenantId: string, by: { actor: string; requestId: string }): Promise<{ previousVersion: string; version: string }> {
  const tenant = await s.tenants.get(tenantId);
  if (!tenant) throw new AppError("not-found", "no tenant with this id");
  const previous = await s.keys.currentKek(tenantId);
  const next = await s.keys.rotateKek(tenantId);
  await s.audit.append({
    tenantId,
    actor: by.actor,
    action: "key.rotated",
    target: { type: "tenant", id: tenantId },
    requestId: by.requestId,
    details: { previousVersion: previous.version, version: next.version },
  });
  await s.queues.send(QUEUES.rewrap.name, rewrapMessage, { tenantId });
  return { previousVersion: previous.version, version: next.version };
}

const olderKeyQuery = (tenantId: string, version: string, select: string) => ({
  query: `SELECT ${select} FROM c WHERE c.tenantId = @tenantId AND c.type = 'upload' AND NOT IS_NULL(c.dataKey) AND c.dataKey.kekVersion != @version`,
  parameters: [
    { name: "@tenantId", value: tenantId },
    { name: "@version", value: version },
  ],
});

/** Re-wraps up to `batchSize` data keys onto the current KEK version. `remaining` says whether to run again. */
export async function rewrapBatch(s: Services, tenantId: string, batchSize = 100): Promise<{ rewrapped: number; remaining: boolean; version: string }> {
  const current = await s.keys.currentKek(tenantId);

  const tenant = await s.tenants.get(tenantId);
  if (tenant?.contactEmail && tenant.contactEmail.kekVersion !== current.version) {
    const aad = fieldAssociatedData(tenantId, tenantId, "contactEmail");
    const plain = decryptField(await s.keys.kek(tenantId, tenant.contactEmail.kekVersion), tenant.contactEmail.value, aad);
    const doc = withoutMeta(tenant);
    await s.tenants.replace({ ...doc, contactEmail: { kekVersion: current.version, value: encryptField(current.key, plain, aad) } }, tenant._etag).catch((err: unknown) => {
      // Changed meanwhile: the next batch tries again.
      if (!(err instanceof AppError)) throw err;
    });
  }

  const { resources } = await s.uploads.container.items
    .query<Record<string, unknown>>(olderKeyQuery(tenantId, current.version, `TOP ${Math.floor(batchSize)} *`))
    .fetchAll();
  let rewrapped = 0;
  let contended = 0;
  for (const raw of resources) {
    let doc: StoredUpload | undefined = { ...parseStored(uploadDocSchema, "uploads", raw), _etag: String(raw._etag) };
    // A record changed meanwhile (a download counted, a deletion) is read again; one that keeps changing is left
    // for the next batch rather than dropped.
    for (let attempt = 0; doc?.dataKey && doc.dataKey.kekVersion !== current.version; attempt++) {
      if (attempt === 3) {
        contended++;
        break;
      }
      const dataKey = await rewrapUploadKey(s, doc, current);
      if (await s.uploads.replaceIfUnchanged({ ...withoutMeta(doc), dataKey }, doc._etag)) {
        rewrapped++;
        break;
      }
      doc = await s.uploads.get(tenantId, doc.id);
    }
  }
  if (rewrapped > 0) {
    await s.audit.append({
      tenantId,
      actor: "system:key-rewrap",
      action: "key.rewrapped",
      target: { type: "tenant", id: tenantId },
      details: { uploads: rewrapped, version: current.version },
    });
  }
  return { rewrapped, remaining: resources.length >= batchSize || contended > 0, version: current.version };
}

export async function kekStatus(s: Services, tenantId: string): Promise<{ currentVersion: string; uploadsOnOlderVersions: number }> {
  if (!(await s.tenants.get(tenantId))) throw new AppError("not-found", "no tenant with this id");
  const current = await s.keys.currentKek(tenantId);
  const { resources } = await s.uploads.container.items.query<number>(olderKeyQuery(tenantId, current.version, "VALUE COUNT(1)")).fetchAll();
  return { currentVersion: current.version, uploadsOnOlderVersions: resources[0] ?? 0 };
}
