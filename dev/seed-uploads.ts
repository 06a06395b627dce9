/**
 * Upload records written straight to Cosmos, for exercising the retention sweep at volume (tests and the purge
 * benchmark): creating thousands through the API would only measure the API again. The personal fields hold
 * placeholders, not real ciphertext; the sweep never decrypts them.
 */
import type { Container } from "@azure/cosmos";
import type { ContainerClient } from "@azure/storage-blob";
import { newUploadId } from "../shared/domain/uploads";
import type { UploadDoc } from "../shared/stores/upload-store";

const DAY = 86_400_000;

export function seedUploadRecord(tenantId: string, createdAt: Date, expiresInDays: number, withBlob: boolean): UploadDoc {
  const id = newUploadId();
  return {
    id,
    tenantId,
    type: "upload",
    status: "available",
    createdAt: createdAt.toISOString(),
    updatedAt: createdAt.toISOString(),
    expiresAt: new Date(createdAt.getTime() + expiresInDays * DAY).toISOString(),
    createdBy: "key:seed",
    categories: ["contact"],
    contentType: "application/octet-stream",
    declaredSize: 10,
    maxDownloads: null,
    downloads: 0,
    firstDownloadAt: null,
    recipientCount: 1,
    subjectCount: 1,
    personal: { senderReference: "v1.seed.x", fileName: "v1.seed.x", recipients: "v1.seed.x", subjects: "v1.seed.x", notifyEmail: null },
    lookups: { subjects: ["seed"], recipients: ["seed"] },
    dataKey: { wrapped: "seed", kekVersion: "1" },
    receiving: null,
    content: withBlob ? { blobName: `${tenantId}/${id}/seed`, header: "", ciphertextSize: 10, storedAt: createdAt.toISOString() } : null,
    notifyOnFirstDownload: false,
    senderNotifiedAt: null,
    deletion: null,
  };
}

/** Writes the records (and a small blob for those that have content), 100 at a time. */
export async function writeSeedUploads(uploads: Container, payloads: ContainerClient, records: UploadDoc[]): Promise<void> {
  for (let i = 0; i < records.length; i += 100) {
    const chunk = records.slice(i, i + 100);
    await Promise.all(chunk.map((d) => uploads.items.create(d)));
    await Promise.all(chunk.filter((d) => d.content).map((d) => payloads.getBlockBlobClient(d.content!.blobName).upload("x", 1)));
  }
}
