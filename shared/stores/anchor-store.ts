/**
 * Audit anchors in Blob Storage: one append blob per tenant and month under the `audit-anchors` container, one
 * JSON line per anchor (see shared/domain/audit-anchor.ts). In Azure the container has a time-based retention
 * policy with protected append writes: lines can be added, never changed or deleted, by anyone, for the policy's
 * period. Appends are conditional on the blob's length, so two sweeps racing write one line, not two.
 */
import type { ContainerClient } from "@azure/storage-blob";
import { anchorBlobName, anchorLine, lastAnchor, parseAnchors, type Anchor } from "../domain/audit-anchor";
import { statusOf } from "./sdk-errors";

/** Enough of a blob's end to hold its last line (a line is about 170 bytes). */
const TAIL_BYTES = 4096;

/** A tenant's anchors as read: the newest one, and the length of each of its blobs when they were listed. */
export interface AnchorState {
  readonly anchor: Anchor | undefined;
  readonly lengths: ReadonlyMap<string, number>;
}

/**
 * Parsed anchors kept per instance, so verifying a long chain in parts does not download every blob each time.
 * Bounded by the number of anchors (about 180 bytes each in memory), not of blobs.
 */
const CACHED_ANCHORS = 100_000;

interface ListedBlob {
  readonly length: number;
  /** Creation time: a blob deleted and made again under the same name is another blob. */
  readonly created: number;
}

export class AnchorStore {
  /** blob name -> what was parsed of it. Append blobs only grow, so a longer one is read on from there. */
  private readonly parsed = new Map<string, ListedBlob & { anchors: Anchor[] }>();
  private cachedAnchors = 0;

  constructor(private readonly container: ContainerClient) {}

  /** A tenant's anchor blobs, oldest month first. */
  private async blobs(tenantId: string): Promise<Map<string, ListedBlob>> {
    const found: Array<[string, ListedBlob]> = [];
    for await (const b of this.container.listBlobsFlat({ prefix: `${tenantId}/` })) {
      found.push([b.name, { length: b.properties.contentLength ?? 0, created: b.properties.createdOn?.getTime() ?? 0 }]);
    }
    // Month names sort chronologically.
    return new Map(found.sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /** The newest anchor of a tenant (the last line of its newest non-empty blob) and its blobs' lengths. */
  async read(tenantId: string): Promise<AnchorState> {
    const listed = await this.blobs(tenantId);
    const lengths = new Map([...listed].map(([name, b]) => [name, b.length] as const));
    for (const [name, length] of [...lengths].reverse()) {
      // A blob created by a run that crashed before appending is empty.
      if (length === 0) continue;
      const offset = Math.max(0, length - TAIL_BYTES);
      const blob = this.container.getBlobClient(name);
      let anchor = lastAnchor((await blob.downloadToBuffer(offset, length - offset)).toString("utf8"), tenantId);
      // Only the end is read, normally; if no whole line is in it (a long junk line), read the whole blob.
      if (!anchor && offset > 0) anchor = lastAnchor((await blob.downloadToBuffer(0, length)).toString("utf8"), tenantId);
      if (anchor) return { anchor, lengths };
    }
    return { anchor: undefined, lengths };
  }

  /**
   * Every anchor of a tenant, in the order written (months in order, lines in order). For verification. Each blob
   * is listed every time; only what was appended since this instance last read it is downloaded (every append is
   * whole lines). A blob that got shorter or was made again (neither is possible under the retention policy) is read
   * again in full.
   */
  async all(tenantId: string): Promise<Anchor[]> {
    const out: Anchor[] = [];
    for (const [name, blob] of await this.blobs(tenantId)) {
      let known = this.parsed.get(name);
      if (!known || known.created !== blob.created || known.length > blob.length) known = { ...blob, length: 0, anchors: [] };
      if (blob.length > known.length) {
        const added = await this.container.getBlobClient(name).downloadToBuffer(known.length, blob.length - known.length);
        known = { ...blob, anchors: [...known.anchors, ...parseAnchors(added.toString("utf8"), tenantId)] };
      }
      this.remember(name, known);
      out.push(...known.anchors);
    }
    return out;
  }

  /** Caches a parsed blob as the most recently used, dropping the least recently used beyond the bound. */
  private remember(name: string, entry: ListedBlob & { anchors: Anchor[] }): void {
    this.cachedAnchors -= this.parsed.get(name)?.anchors.length ?? 0;
    this.parsed.delete(name);
    this.parsed.set(name, entry);
    this.cachedAnchors += entry.anchors.length;
    for (const [oldest, e] of this.parsed) {
      if (this.cachedAnchors <= CACHED_ANCHORS || oldest === name) break;
      this.parsed.delete(oldest);
      this.cachedAnchors -= e.anchors.length;
    }
  }

  /**
   * Appends `anchor` to its tenant's blob for the month of `anchor.anchoredAt`, if that blob is still as long as
   * it was when `seen` was read. Returns false when another writer appended since (nothing written; read again).
   */
  async append(anchor: Anchor, seen: AnchorState): Promise<boolean> {
    const name = anchorBlobName(anchor.tenantId, new Date(anchor.anchoredAt));
    const blob = this.container.getAppendBlobClient(name);
    await blob.createIfNotExists({ blobHTTPHeaders: { blobContentType: "application/x-ndjson" } });
    const line = Buffer.from(anchorLine(anchor), "utf8");
    try {
      await blob.appendBlock(line, line.length, { conditions: { appendPosition: seen.lengths.get(name) ?? 0 } });
      return true;
    } catch (err) {
      if (statusOf(err) === 412) return false;
      throw err;
    }
  }

  /** Reachability, for health: reads the container's properties. */
  async probe(): Promise<void> {
    await this.container.getProperties();
  }
}
