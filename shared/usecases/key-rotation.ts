/**
 * Key-encryption key rotation. Rotating adds a new KEK version in the key provider and records it on the tenant
 * document, which every request reads, so every instance wraps new data keys with it at once; existing uploads
 * stay readable under their recorded version. A queue-driven job then re-wraps old data keys (and the tenant's
 * encrypted contact address) under the tenant's current version, a batch per message, without touching any
 * payload. When it runs out of work it checks once more a little later, for uploads created during the rotation.
 *
 * Versions only ever move forward (shared/domain/kek-versions.ts): rotations of one tenant take turns under a lease
 * on the tenant document, so each new version is the newest and is appended to the tenant's recorded order; the
 * re-wrap job moves a data key only from the version it read to a later one.
 */
import { randomBytes } from "node:crypto";
import { QUEUES } from "../config/resources";
import { encryptField, fieldAssociatedData, IntegrityError } from "../crypto";
import { compareKek, kekHistory, KEK_ROTATION_LEASE_MS, rotationUnderWay } from "../domain/kek-versions";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { StoredTenant } from "../stores/tenant-store";
import type { UploadDoc } from "../stores/upload-store";
import { recordAudit, type Actor } from "./audit-trail";
import { integrityLogFields } from "./integrity";
import { tenantContactEmail } from "./tenants";
import { rewrapMessage, type RewrapMessage } from "./messages";
import { rewrapUploadKey } from "./upload-keys";
import { resealWebhookSecrets } from "./webhooks";
import { resealConsentLinkSecrets, rewrapSubjectKeys } from "./consent-keys";
import { rewrapRequestKeys } from "./subject-request-keys";

/** How long after running out of work the job looks once more (longer than a request that read the old version). */
export const REWRAP_FINAL_CHECK_SECONDS = 300;

/** How long a rotation waits for another rotation of the same tenant to finish before it answers conflict. */
const ROTATION_WAIT_MS = 20_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const notFound = () => new AppError("not-found", "no tenant with this id");

/**
 * Takes the tenant's rotation lease, waiting (up to ROTATION_WAIT_MS) while another rotation holds it. Returns the
 * tenant as it was when the lease was taken. Errors: not-found; conflict (offboarded, or still busy after waiting).
 */
async function takeRotationLease(s: Services, tenantId: string, leaseId: string): Promise<StoredTenant> {
  const began = Date.now();
  for (let attempt = 0; ; attempt++) {
    const doc = await s.tenants.get(tenantId);
    if (!doc) throw notFound();
    if (doc.offboardedAt) throw new AppError("conflict", "the tenant was offboarded; it has no keys");
    const now = s.clock.now();
    if (!rotationUnderWay(doc.kekRotation, now)) {
      const lease = { id: leaseId, until: new Date(now.getTime() + KEK_ROTATION_LEASE_MS).toISOString() };
      if (await s.tenants.replace({ ...withoutMeta(doc), kekRotation: lease }, doc._etag)) return doc;
      continue; // the document changed under us: read it again
    }
    if (Date.now() - began > ROTATION_WAIT_MS) {
      throw new AppError("conflict", "another rotation of this tenant's key is under way; retry when it has finished");
    }
    await sleep(Math.min(500, 10 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()));
  }
}

/**
 * Adds a KEK version and makes it the tenant's current one; queues the re-wrap job. Rotations of one tenant take
 * turns, so the version returned is newer than `previousVersion` and than every version before it.
 * Errors: not-found; conflict (offboarded, another rotation still running after a wait, or the lease ran out).
 */
export async function rotateTenantKek(s: Services, tenantId: string, by: Actor): Promise<{ previousVersion: string; version: string }> {
  const leaseId = randomBytes(8).toString("hex");
  await takeRotationLease(s, tenantId, leaseId);
  let next;
  try {
    next = await s.keys.rotateKek(tenantId);
  } catch (err) {
    await releaseRotationLease(s, tenantId, leaseId).catch(() => undefined);
    throw err;
  }
  let previousVersion: string;
  for (let attempt = 0; ; attempt++) {
    const doc = await s.tenants.get(tenantId);
    if (!doc) throw notFound();
    // A rotation slower than its lease lets the next one in; its version is then not made current (it stays unused).
    if (doc.kekRotation?.id !== leaseId) throw new AppError("conflict", "the rotation took longer than allowed and was not applied; retry");
    const now = s.clock.now().toISOString();
    const history = kekHistory(doc);
    if (await s.tenants.replace({ ...withoutMeta(doc), kekVersion: next.version, kekVersions: [...history, next.version], kekRotation: null, updatedAt: now }, doc._etag)) {
      previousVersion = doc.kekVersion;
      break;
    }
    if (attempt >= 10) throw new AppError("conflict", "the tenant was changed by other requests; retry");
  }
  await recordAudit(s, tenantId, by, "key.rotated", { type: "tenant", id: tenantId }, { previousVersion, version: next.version });
  await s.queues.send(QUEUES.rewrap.name, rewrapMessage, { tenantId, version: next.version });
  return { previousVersion, version: next.version };
}

/** Frees the lease if this rotation still holds it (a failed rotation lets the next one in at once). */
async function releaseRotationLease(s: Services, tenantId: string, leaseId: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const doc = await s.tenants.get(tenantId);
    if (!doc || doc.kekRotation?.id !== leaseId) return;
    if (await s.tenants.replace({ ...withoutMeta(doc), kekRotation: null }, doc._etag)) return;
  }
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

  const history = kekHistory(tenant);
  try {
    await resealWebhookSecrets(s, tenantId, target, (v) => compareKek(history, v, target.version) === "older");
  } catch (err) {
    skipDamaged(err);
  }
  try {
    await resealConsentLinkSecrets(s, tenantId, target, (v) => compareKek(history, v, target.version) === "older");
  } catch (err) {
    skipDamaged(err);
  }

  const resources = await s.uploads.withOtherKekVersion(tenantId, target.version, batchSize);
  // Versions this batch's tenant read does not know: older than its history, or made current since (then newer).
  let fresher: string[] | undefined;
  let rewrapped = 0;
  let contended = 0;
  for (const doc of resources) {
    if (!doc.dataKey) continue;
    const from = doc.dataKey.kekVersion;
    if (history.indexOf(from) < 0) fresher ??= kekHistory((await s.tenants.get(tenantId)) ?? tenant);
    // Only ever forward: a key already on a later version than this batch's target is left where it is.
    if (compareKek(history, from, target.version, fresher?.includes(from) ?? false) !== "older") continue;
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
      // Moved meanwhile (by a batch with a later target, or already here): leave it.
      (fresh) => (fresh.dataKey?.kekVersion === from ? { ...withoutMeta(fresh), dataKey } : undefined),
      { current: doc, attempts: 3 },
    );
    if (r.updated) rewrapped++;
    else if (r.reason === "contended") contended++;
  }
  // Consent subjects' data keys, the same way (only ever forward).
  const subjects = await rewrapSubjectKeys(
    s,
    tenantId,
    target,
    async (from) => {
      if (history.indexOf(from) < 0) fresher ??= kekHistory((await s.tenants.get(tenantId)) ?? tenant);
      return compareKek(history, from, target.version, fresher?.includes(from) ?? false) === "older";
    },
    skipDamaged,
    batchSize,
  );
  // Data-subject requests' data keys, the same way.
  const requests = await rewrapRequestKeys(
    s,
    tenantId,
    target,
    async (from) => {
      if (history.indexOf(from) < 0) fresher ??= kekHistory((await s.tenants.get(tenantId)) ?? tenant);
      return compareKek(history, from, target.version, fresher?.includes(from) ?? false) === "older";
    },
    skipDamaged,
    batchSize,
  );
  if (rewrapped + subjects.rewrapped + requests.rewrapped > 0) {
    await recordAudit(s, tenantId, { actor: "system:key-rewrap" }, "key.rewrapped", { type: "tenant", id: tenantId }, {
      uploads: rewrapped,
      consentSubjects: subjects.rewrapped,
      subjectRequests: requests.rewrapped,
      version: target.version,
    });
  }
  // A full batch of nothing but damaged keys would come back forever: stop; the delayed last look logs them again.
  const remaining =
    (resources.length >= batchSize && rewrapped + contended > 0) ||
    contended > 0 ||
    (subjects.full && subjects.rewrapped + subjects.contended > 0) ||
    subjects.contended > 0 ||
    (requests.full && requests.rewrapped + requests.contended > 0) ||
    requests.contended > 0;
  return { rewrapped: rewrapped + subjects.rewrapped + requests.rewrapped, damaged, remaining, version: target.version };
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
