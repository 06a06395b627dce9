/**
 * Access and portability packages in Blob Storage: the zip, encrypted in the streamed format of uploads (SDS1,
 * docs/encryption-format.md: a 48-byte header, then 64 KiB segments sealed with AES-256-GCM) with the package's own
 * data key, bound to the tenant and the request (associated data `dsr-package`, tenant, request id), under
 * `<tenantId>/<requestId>/<attemptId>` in the payloads container (a request id never equals an upload id).
 *
 * A package is produced as a stream whose length is known only at its end, so writing does not go through
 * PayloadStore.write (which checks a declared size): the ciphertext is staged as blocks by the SDK's uploadStream
 * (fixed buffers, so memory stays flat) and committed once at the end; reading, discarding and deleting are
 * PayloadStore's, with this content kind.
 */
import { createHash } from "node:crypto";
import { pipeline, Transform, type Readable, type TransformCallback } from "node:stream";
import type { ContainerClient } from "@azure/storage-blob";
import { createEncryptStream, encodeAssociatedData } from "../crypto";
import { blobPrefix, HeaderTap, PayloadStore, type ContentKind } from "./payload-store";

/** ("dsr-package", tenant, request id): a package's stream copied onto another request or tenant fails to decrypt. */
export function packageAssociatedData(tenantId: string, requestId: string): Buffer {
  if (tenantId === "" || requestId === "") throw new RangeError("tenantId and requestId must not be empty");
  return encodeAssociatedData("dsr-package", tenantId, requestId);
}

const PACKAGE_CONTENT: ContentKind = { label: "request", associatedData: packageAssociatedData };

/** Block size and parallel blocks of a package write: 4 MiB, 3 at a time (as uploads), so at most ~16 MiB buffered. */
const BLOCK_BYTES = 4 * 1024 * 1024;
const BLOCKS_IN_FLIGHT = 3;

export interface PackageTarget {
  tenantId: string;
  requestId: string;
  attemptId: string;
}

export interface StoredPackageContent {
  blobName: string;
  /** The stream header, base64. */
  header: string;
  ciphertextSize: number;
  /** The plaintext (zip) size in bytes. */
  size: number;
  /** SHA-256 of the plaintext, hex. */
  sha256: string;
}

/** Counts and hashes the plaintext on its way to the encryptor. */
class Measure extends Transform {
  size = 0;
  private readonly hash = createHash("sha256");
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    this.hash.update(chunk);
    cb(null, chunk);
  }
  digest(): string {
    return this.hash.digest("hex");
  }
}

export class PackageBlobs {
  private readonly store: PayloadStore;

  constructor(private readonly container: ContainerClient) {
    this.store = new PayloadStore(container, PACKAGE_CONTENT);
  }

  /**
   * Encrypts `body` (of any length) into a new blob for this attempt; the blob exists only once the whole body was
   * stored. When it throws, the caller discards the attempt (`discard`): staged blocks are ciphertext of personal data.
   */
  async write(target: PackageTarget, dataKey: Buffer, body: Readable): Promise<StoredPackageContent> {
    const blobName = `${blobPrefix(target.tenantId, target.requestId)}${target.attemptId}`;
    const measure = new Measure();
    const tap = new HeaderTap();
    const encrypt = createEncryptStream(dataKey, packageAssociatedData(target.tenantId, target.requestId));
    let failed: Error | undefined;
    pipeline(body, measure, encrypt, tap, (err) => {
      if (err) failed ??= err;
    });
    try {
      await this.container.getBlockBlobClient(blobName).uploadStream(tap, BLOCK_BYTES, BLOCKS_IN_FLIGHT, {
        conditions: { ifNoneMatch: "*" },
        blobHTTPHeaders: { blobContentType: "application/octet-stream" },
        metadata: { format: "sds1", [PACKAGE_CONTENT.label]: target.requestId },
      });
    } catch (err) {
      body.destroy();
      tap.destroy();
      throw failed ?? err;
    }
    if (failed) throw failed;
    return { blobName, header: tap.header().toString("base64"), ciphertextSize: tap.total, size: measure.size, sha256: measure.digest() };
  }

  /** The decrypted zip, once its first authenticated bytes are ready (PayloadStore.open). */
  open(ref: { tenantId: string; requestId: string; blobName: string; header: string; size: number }, dataKey: Buffer): Promise<Readable> {
    return this.store.open({ tenantId: ref.tenantId, uploadId: ref.requestId, blobName: ref.blobName, header: ref.header, size: ref.size }, dataKey);
  }

  /** Removes what an attempt left (its blob or staged blocks). Idempotent. */
  discard(target: PackageTarget): Promise<void> {
    return this.store.discard({ tenantId: target.tenantId, uploadId: target.requestId, attemptId: target.attemptId });
  }

  /** Deletes every blob of the request's packages (all attempts, staged blocks included); returns how many names. */
  deleteAll(tenantId: string, requestId: string): Promise<number> {
    return this.store.deleteAll(tenantId, requestId);
  }
}
