/**
 * Purging an access or portability package (GDPR Art. 15, 20) before or at the end of its download window, shared by
 * every path that must destroy one: the retention sweep at the end of DSR_EXPORT_DAYS, the person's erasure (Art. 17),
 * and the destruction of an upload's content (erasure, the sender's DELETE, the 32-day expiry purge): a package holds
 * a copy of the content of the uploads it lists in `contentOf`, and that copy must not outlive the upload (Art. 17(1),
 * 5(1)(e)).
 *
 * The same four steps in the same order, each safe to repeat: (1) the package's data key leaves the record under a
 * lease (crypto-shred: every copy of the zip is unreadable from then on), (2) its blobs are deleted, (3)
 * `subject-request.package-purged` is written once (keyed by the package and its build, so whichever path finishes writes it), (4)
 * it is marked purged with its reason. The request's package view shows the reason (`purgedReason`).
 */
import { AppError } from "../errors";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { PackageDoc } from "../stores/package-store";
import { recordAuditOnce, type Actor } from "./audit-trail";

/** How long a worker holds a package it purges. */
const PURGE_LEASE_MS = 5 * 60_000;

export type PackagePurgeReason = NonNullable<NonNullable<PackageDoc["purge"]>["reason"]>;

/**
 * Purges the request's package now (see the module). `sweepId` names the retention sweep (its receipt lists the
 * package), `uploadId` the upload whose content's destruction caused it. Returns "purged" (now or before), or "busy"
 * when another worker holds a live lease on its purge. Errors: conflict when the record kept changing.
 */
export async function purgePackageNow(
  s: Services,
  tenantId: string,
  requestId: string,
  why: { reason: PackagePurgeReason; actor: Actor; sweepId?: string | null; uploadId?: string | null; details?: Record<string, unknown> },
): Promise<"purged" | "busy"> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const pkg = await s.packages.get(tenantId, requestId);
    if (!pkg || pkg.state === "purged") return "purged";
    const now = s.clock.now();
    if (pkg.purge?.leaseUntil && Date.parse(pkg.purge.leaseUntil) > now.getTime()) return "busy";
    const purge = {
      sweepId: why.sweepId ?? pkg.purge?.sweepId ?? null,
      keyDestroyedAt: pkg.purge?.keyDestroyedAt ?? now.toISOString(),
      blobsDeletedAt: null,
      leaseUntil: new Date(now.getTime() + PURGE_LEASE_MS).toISOString(),
      reason: pkg.purge?.reason ?? why.reason,
      uploadId: pkg.purge?.reason ? (pkg.purge.uploadId ?? null) : (why.uploadId ?? null),
    };
    const leased = await s.packages.replace({ ...withoutMeta(pkg), dataKey: null, building: null, purge, updatedAt: now.toISOString() }, pkg._etag);
    if (!leased) continue;
    await s.packageBlobs.deleteAll(tenantId, requestId);
    await recordAuditOnce(s, tenantId, why.actor, "subject-request.package-purged", { type: "subject-request", id: requestId }, {
      reason: purge.reason,
      ...(purge.uploadId ? { uploadId: purge.uploadId } : {}),
      ...(why.details ?? {}),
    }, `dsr-package-purged:${requestId}:${pkg.builtAt ?? "unbuilt"}`);
    const done = s.clock.now().toISOString();
    if (await s.packages.replace({ ...withoutMeta(leased), state: "purged", content: null, purge: { ...purge, blobsDeletedAt: done, leaseUntil: null }, updatedAt: done }, leased._etag)) {
      return "purged";
    }
  }
  throw new AppError("conflict", "a package kept changing; the step is tried again");
}

/**
 * Every package of the tenant that holds a copy of the upload's content, purged (reason `upload-deleted`). Called by
 * every destruction of an upload's content after its key was destroyed (shared/usecases/upload-deletion.ts), so a
 * package built meanwhile either is found here or finds the upload gone when it checks after being stored. Returns
 * the request ids of the packages. A package whose purge another worker holds has its key destroyed already (the
 * copy is unreadable); that worker, or the retention sweep at the package's end, finishes it.
 */
export async function purgePackagesHoldingUpload(s: Services, tenantId: string, uploadId: string, actor: Actor): Promise<string[]> {
  const ids = await s.packages.holdingUploadContent(tenantId, uploadId);
  for (const id of ids) await purgePackageNow(s, tenantId, id, { reason: "upload-deleted", actor, uploadId });
  return ids;
}
