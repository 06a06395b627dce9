/**
 * Local provisioning: creates the Cosmos database and containers, blob containers and queues the code uses, on
 * the embedded services. In Azure the Bicep in infra/ creates the same names (the app's identity has data-plane
 * rights only and never creates resources).
 */
import { QueueServiceClient } from "@azure/storage-queue";
import { BlobServiceClient } from "@azure/storage-blob";
import { BLOB_CONTAINERS, LOCAL_ONLY_BLOB_CONTAINERS, QUEUES } from "../shared/config/resources";
import type { Settings } from "../shared/config/settings";
import { createCosmosClient, provisionCosmos } from "../shared/stores/cosmos";

export async function provisionLocal(settings: Settings): Promise<void> {
  if (settings.storage.kind !== "connectionString" || settings.cosmos.kind !== "connectionString") {
    throw new Error("local provisioning needs connection strings (it never touches Azure resources)");
  }
  const cosmos = createCosmosClient(settings.cosmos);
  try {
    await provisionCosmos(cosmos, settings.cosmos.database);
  } finally {
    cosmos.dispose();
  }
  const blobs = BlobServiceClient.fromConnectionString(settings.storage.connectionString!);
  for (const c of [...Object.values(BLOB_CONTAINERS), ...Object.values(LOCAL_ONLY_BLOB_CONTAINERS)]) {
    await blobs.getContainerClient(c.name).createIfNotExists();
  }
  const queues = QueueServiceClient.fromConnectionString(settings.storage.connectionString!);
  for (const q of Object.values(QUEUES)) {
    await queues.getQueueClient(q.name).createIfNotExists();
    await queues.getQueueClient(`${q.name}-poison`).createIfNotExists();
  }
}
