/**
 * Downloads running on this instance, and what stops them. A download was admitted when it started; while it runs,
 * its upload may be deleted or expire, its tenant suspended or offboarded, or the tenant's keys destroyed. Each
 * running download has a guard that it asks before every chunk it sends:
 *
 * - on every chunk, from memory: the upload's expiry against the clock, and whether something on this instance
 *   changed the upload or its tenant since the last look (`storedStateChanged`: deletion, suspension and offboarding
 *   call it right after their write), which makes it re-read the stored state before that chunk;
 * - every `KEY_CHECK_BYTES` sent or `RECHECK_MS`, whichever comes first: that the tenant's key-encryption key is
 *   still there (the key provider answers from its cache, so keys destroyed on this instance fail at once and keys
 *   destroyed elsewhere once that cache lapses);
 * - every `RECHECK_MS`: the stored upload and tenant, read again (two point reads a second per running download,
 *   none per chunk), which is how a change made on another instance is seen.
 *
 * So on the instance where the change is made a download stops within one chunk of it (and never later than 1 MiB or
 * one second after it); elsewhere within `RECHECK_MS` of the stored change, or for keys destroyed without one, within
 * the key cache's lifetime.
 */
import { KeyNotFoundError } from "../keys/key-provider";
import type { Services } from "../services";

/** Between two checks of the key, at most this much is sent (1 MiB). */
export const KEY_CHECK_BYTES = 1024 * 1024;
/** Between two reads of the stored upload and tenant, at most this much time passes. */
export const RECHECK_MS = 1000;

/** Why a running download was stopped (also the `reason` of its `upload.download-ended` entry). */
export type StopReason = "upload-deleted" | "upload-expired" | "tenant-suspended" | "key-destroyed" | "check-failed";

export class DownloadStoppedError extends Error {
  constructor(readonly reason: StopReason) {
    super(`the download was stopped: ${reason}`);
    this.name = "DownloadStoppedError";
  }
}

interface Registered {
  readonly uploadId: string;
  stale: boolean;
}

/** Running downloads by tenant. */
const running = new Map<string, Set<Registered>>();

/**
 * Something on this instance changed what the running downloads of `tenantId` (of its upload `uploadId` only, when
 * given) may do: they re-read the stored state before their next chunk. Call it right after the write.
 */
export function storedStateChanged(tenantId: string, uploadId?: string): void {
  for (const r of running.get(tenantId) ?? []) if (uploadId === undefined || r.uploadId === uploadId) r.stale = true;
}

/** The guard of one running download. */
export interface DownloadGuard {
  /** Resolves when the next `bytes` may be sent; throws DownloadStoppedError when they may not. */
  beforeSending(bytes: number): Promise<void>;
  /** The download ended, however: it leaves the registry. */
  close(): void;
}

export function guardDownload(
  s: Pick<Services, "clock" | "keys" | "uploads" | "tenants">,
  upload: { tenantId: string; uploadId: string; expiresAt: string; kekVersion: string },
): DownloadGuard {
  const { tenantId, uploadId } = upload;
  const entry: Registered = { uploadId, stale: false };
  let set = running.get(tenantId);
  if (!set) running.set(tenantId, (set = new Set()));
  set.add(entry);

  const started = s.clock.now().getTime();
  let expiresAt = Date.parse(upload.expiresAt);
  let kekVersion = upload.kekVersion;
  let keyCheckedAt = started;
  let bytesSinceKeyCheck = 0;
  let storedCheckedAt = started;

  const stop = (reason: StopReason): never => {
    throw new DownloadStoppedError(reason);
  };

  async function rereadStored(now: number): Promise<void> {
    entry.stale = false;
    storedCheckedAt = now;
    let doc, tenant;
    try {
      [doc, tenant] = await Promise.all([s.uploads.get(tenantId, uploadId), s.tenants.get(tenantId)]);
    } catch {
      // What cannot be checked is not sent.
      return stop("check-failed");
    }
    if (!doc || doc.status !== "available" || !doc.dataKey) return stop(doc?.deletion?.reason === "expired" || doc?.status === "expired" ? "upload-expired" : "upload-deleted");
    if (!tenant || tenant.status !== "active" || tenant.offboardedAt) return stop("tenant-suspended");
    expiresAt = Date.parse(doc.expiresAt);
    kekVersion = doc.dataKey.kekVersion;
  }

  async function checkKey(now: number): Promise<void> {
    keyCheckedAt = now;
    bytesSinceKeyCheck = 0;
    try {
      await s.keys.kek(tenantId, kekVersion);
    } catch (err) {
      return stop(err instanceof KeyNotFoundError ? "key-destroyed" : "check-failed");
    }
  }

  return {
    async beforeSending(bytes) {
      const now = s.clock.now().getTime();
      if (entry.stale || now - storedCheckedAt >= RECHECK_MS) await rereadStored(now);
      if (now >= expiresAt) stop("upload-expired");
      if (bytesSinceKeyCheck >= KEY_CHECK_BYTES || now - keyCheckedAt >= RECHECK_MS) await checkKey(now);
      bytesSinceKeyCheck += bytes;
    },
    close() {
      set.delete(entry);
      if (set.size === 0 && running.get(tenantId) === set) running.delete(tenantId);
    },
  };
}
