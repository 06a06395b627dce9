/**
 * Key-encryption key versions only ever move forward. Pure rules for the order of a tenant's KEK versions and for
 * the lease that lets one rotation of a tenant run at a time.
 *
 * Version ids are opaque (Key Vault's are random hex, and its creation times have one-second resolution), so the
 * order is the one the tenant document records: `kekVersions`, oldest first, the current one last. A rotation
 * appends to it while it holds the tenant's rotation lease, so no two rotations of a tenant interleave and each
 * new version is newer than every one recorded. Tenants created before the history was kept have none: their
 * history starts at the version that was current.
 */

/** How long a rotation may hold the tenant's rotation lease (a rotation that dies mid-way frees it after this). */
export const KEK_ROTATION_LEASE_MS = 2 * 60_000;

export interface KekRotationLease {
  id: string;
  /** ISO time after which the lease is free again. */
  until: string;
}

/** The tenant's KEK versions, oldest first, ending with the current one. */
export function kekHistory(doc: { kekVersion: string; kekVersions?: readonly string[] | null }): string[] {
  const recorded = (doc.kekVersions ?? []).filter((v) => v !== doc.kekVersion);
  return [...recorded, doc.kekVersion];
}

/** Is another rotation of the tenant under way (its lease not yet run out)? */
export function rotationUnderWay(lease: KekRotationLease | null | undefined, now: Date): boolean {
  return lease != null && Date.parse(lease.until) > now.getTime();
}

/**
 * Where `version` stands relative to `target` in a history (the re-wrap job's question: may a key wrapped with
 * `version` be moved to `target`?). "older": earlier in the history, or a version from before the history was kept
 * (`knownNewer` false); "same"; "newer": later than target, or not in this history but in a fresher one
 * (`knownNewer` true: it became current after this history was read).
 */
export function compareKek(history: readonly string[], version: string, target: string, knownNewer = false): "older" | "same" | "newer" {
  if (version === target) return "same";
  const v = history.indexOf(version);
  const t = history.indexOf(target);
  if (v >= 0 && t >= 0) return v < t ? "older" : "newer";
  if (v < 0) return knownNewer ? "newer" : "older";
  return "newer";
}
