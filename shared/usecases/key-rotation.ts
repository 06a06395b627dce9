/**
 * Key-encryption key rotation. Rotating adds a new KEK version in the key provider and records it on the tenant
 * document, which every request reads, so every instance wraps new data keys with it at once; existing uploads
 * stay readable under their recorded version. A queue-driven job then re-wraps old data keys (and the tenant's
 * encrypted contact address) under the tenant's current version, a batch per message, without touching any
 * payload. When it runs out of work it checks once more a little later, for uploads created during the rotation.
 */
import { QUEUES } from "../config/resources";
import { encryptField, fieldAssociatedData, IntegrityError } from "../crypto";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { UploadDoc } from "../stores/upload-store";
import { recordAudit, type Actor } from "./audit-trail";
import { integrityLogFields } from "./integrity";
import { tenantContactEmail } from "./tenants";
import { rewrapMessage, type RewrapMessage } from "./messages";
import { rewrapUploadKey } from "./upload-keys";

/** How long after running out of work the job looks once more (longer than a request that read the old version). */
export const REWRAP_FINAL_CHECK_SECONDS = 300;

/** Adds a KEK version and makes it the tenant's current one; queues the re-wrap job. Errors: not-found, conflict. */
export async function rotateTenantKek(s: Services, tenantId: string, by: Actor): Promise<{ previousVersion: string; version: string }> {
  const tenant = await s.tenants.get(tenantId);
  if (!tenant) throw new AppError("not-found", "no tenant with this id");
  if (tenant.offboardedAt) throw new AppError("conflict", "the tenant was offboarded; it has no keys");
  const next = await s.keys.rotateKek(tenantId);
  let doc = tenant;
  for (let attempt = 0; ; attempt++) {
    if (await s.tenants.replace({ ...withoutMeta(doc), kekVersion: next.version, updatedAt: s.clock.now().toISOString() }, doc._etag)) break;
    if (attempt >= 5) throw new AppError("conflict", "the tenant was changed by other requests; retry");
    const fresh = await s.tenants.get(tenantId);
    if (!fresh) throw new AppError("not-found", "no tenant with this id");
    doc = fresh;
  }
  const previousVersion = doc.kekVersion;
  await recordAudit(s, tenantId, by, "key.rotated", { type: "tenant", id: tenantId }, { previousVersion, version: next.version });
  await s.queues.send(QUEUES.rewrap.name, rewrapMessage, { tenantId, version: next.version });
  return { previousVersion, version: next.version };
}

/**
 * Re-wraps up to `batchSize` data keys onto the tenant's current KEK version. `remaining` says whether to run again.
 * A wrapped key or contact address that fails authentication is not re-wrapped (it cannot be): the record stays on
 * its version, `integrity.failure` is logged with its ids, and the rest of the batch goes on (`damaged` counts them).
 */
export async function rewrapBatch(
  s: Services,
  tenantId: string,
  batchSize = 100,
  log?: Log,
): Promise<{ rewrapped: number; damaged: number; remaining: boolean; version: string | null }> {
  const tenant = await s.tenants.get(tenantId);
  // An offboarded tenant has no keys and no uploads left to re-wrap.
  if (!tenant || tenant.offboardedAt) return { rewrapped: 0, damaged: 0, remaining: false, version: null };
  const target = { version: tenant.kekVersion, key: await s.keys.kek(tenantId, tenant.kekVersion) };
  let damaged = 0;
  const skipDamaged = (err: unknown) => {
    if (!(err instanceof IntegrityError)) throw err;
    damaged++;
    log?.error("integrity.failure", { job: "key-rewrap", ...integrityLogFields(err) });
  };

  if (tenant.contactEmail && tenant.contactEmail.kekVersion !== target.version) {
    try {
      const plain = (await tenantContactEmail(s, tenant))!;
      const aad = fieldAssociatedData(tenantId, tenantId, "contactEmail");
      // Changed meanwhile (the write returns false): the next batch tries again.
      await s.tenants.replace({ ...withoutMeta(tenant), contactEmail: { kekVersion: target.version, value: encryptField(target.key, plain, aad) } }, tenant._etag);
    } catch (err) {
      skipDamaged(err);
    }
  }

  const resources = await s.uploads.withOtherKekVersion(tenantId, target.version, batchSize);
  let rewrapped = 0;
  let contended = 0;
  for (const doc of resources) {
    if (!doc.dataKey) continue;
    // The data key never changes, so its new wrapping does not either; a record changed meanwhile (a download
    // counted, a deletion) is read again, and one that keeps changing is left for the next batch, not dropped.
    let dataKey: UploadDoc["dataKey"];
    try {
      dataKey = await rewrapUploadKey(s, doc, target);
    } catch (err) {
      skipDamaged(err);
      continue;
    }
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
    await recordAudit(s, tenantId, { actor: "system:key-rewrap" }, "key.rewrapped", { type: "tenant", id: tenantId }, { uploads: rewrapped, version: target.version });
  }
  // A full batch of nothing but damaged keys would come back forever: stop; the delayed last look logs them again.
  const remaining = (resources.length >= batchSize && rewrapped + contended > 0) || contended > 0;
  return { rewrapped, damaged, remaining, version: target.version };
}

/** One queue message's work: a batch, then the next message (now, or the delayed last look). */
export async function runRewrapJob(s: Services, msg: RewrapMessage, log?: Log): Promise<Awaited<ReturnType<typeof rewrapBatch>>> {
  const r = await rewrapBatch(s, msg.tenantId, undefined, log);
  if (r.remaining) await s.queues.send(QUEUES.rewrap.name, rewrapMessage, { tenantId: msg.tenantId, version: msg.version });
  else if (!msg.final && r.version) {
    await s.queues.send(QUEUES.rewrap.name, rewrapMessage, { tenantId: msg.tenantId, version: msg.version, final: true }, { visibilityTimeoutSeconds: REWRAP_FINAL_CHECK_SECONDS });
  }
  return r;
}

export async function kekStatus(s: Services, tenantId: string): Promise<{ currentVersion: string; uploadsOnOlderVersions: number }> {
  const tenant = await s.tenants.get(tenantId);
  if (!tenant) throw new AppError("not-found", "no tenant with this id");
  return { currentVersion: tenant.kekVersion, uploadsOnOlderVersions: await s.uploads.countWithOtherKekVersion(tenantId, tenant.kekVersion) };
}
