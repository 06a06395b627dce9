/**
 * Audit anchors in Blob Storage: one append blob per tenant and month under the `audit-anchors` container, one
 * JSON line per anchor (see shared/domain/audit-anchor.ts). In Azure the container has a time-based retention
 * policy with protected append writes: lines can be added, never changed or deleted, by anyone, for the policy's
 * period. Appends are conditional on the blob's length, so two sweeps racing write one line, not two.
 */
import type { ContainerClient } from "@azure/storage-blob";
import { anchorBlobName, anchorLine, lastAnchor, parseAnchors, type Anchor } from "../domain/audit-anchor";
import { statusOf } from "../errors";

/** Enough of a blob's end to hold its last line (a line is about 170 bytes). */
const TAIL_BYTES = 4096;

/** A tenant's anchors as read: the newest one, and the length of each of its blobs when they were listed. */
export interface AnchorState {
  readonly anchor: Anchor | undefined;
  readonly lengths: ReadonlyMap<string, number>;
}

/** Parsed anchor blobs kept per instance, so verifying a long chain in parts does not download every blob each time. */
const CACHED_BLOBS = 2000;

export class AnchorStore {
  /** blob name -> its length when parsed, and its anchors. Append blobs only grow, so a longer one is read from there. */
  private readonly parsed = new Map<string, { length: number; anchors: Anchor[] }>();

  constructor(private readonly container: ContainerClient) {}

  /** A tenant's anchor blobs and their lengths, oldest month first. */
  private async blobs(tenantId: string): Promise<Map<string, number>> {
    const found: Array<[string, number]> = [];
    for await (const b of this.container.listBlobsFlat({ prefix: `${tenantId}/` })) found.push([b.name, b.properties.contentLength ?? 0]);
    // Month names sort chronologically.
    return new Map(found.sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /** The newest anchor of a tenant (the last line of its newest non-empty blob) and its blobs' lengths. */
  async read(tenantId: string): Promise<AnchorState> {
    const lengths = await this.blobs(tenantId);
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
   * whole lines). A blob that got shorter (not possible under the retention policy) is read again in full.
   */
  async all(tenantId: string): Promise<Anchor[]> {
    const out: Anchor[] = [];
    for (const [name, length] of await this.blobs(tenantId)) {
      let known = this.parsed.get(name);
      if (!known || known.length > length) known = { length: 0, anchors: [] };
      if (length > known.length) {
        const added = await this.container.getBlobClient(name).downloadToBuffer(known.length, length - known.length);
        known = { length, anchors: [...known.anchors, ...parseAnchors(added.toString("utf8"), tenantId)] };
      }
      this.parsed.delete(name);
      this.parsed.set(name, known);
      out.push(...known.anchors);
    }
    // Least recently used first: drop the oldest beyond the bound.
    for (const name of this.parsed.keys()) {
      if (this.parsed.size <= CACHED_BLOBS) break;
      this.parsed.delete(name);
    }
    return out;
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
}
