import { BlobServiceClient } from "@azure/storage-blob";
import { QueueServiceClient } from "@azure/storage-queue";
import { CosmosClient } from "@azure/cosmos";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startEmbeddedStorage, type EmbeddedStorage } from "../../dev/embedded-storage";

let storage: EmbeddedStorage;
beforeAll(async () => {
  storage = await startEmbeddedStorage();
});
afterAll(async () => {
  await storage?.stop();
});

describe("embedded storage", () => {
  it("serves blobs, queues and Cosmos over the wire", async () => {
    const blobs = BlobServiceClient.fromConnectionString(storage.storageConnectionString);
    const c = blobs.getContainerClient("probe");
    await c.createIfNotExists();
    await c.getBlockBlobClient("a").upload("hello", 5);
    expect((await c.getBlockBlobClient("a").downloadToBuffer()).toString()).toBe("hello");

    const queues = QueueServiceClient.fromConnectionString(storage.storageConnectionString);
    const q = queues.getQueueClient("probe");
    await q.createIfNotExists();
    await q.sendMessage("aGk=");
    const got = await q.receiveMessages();
    expect(got.receivedMessageItems[0]?.messageText).toBe("aGk=");

    const m = /AccountEndpoint=([^;]+);AccountKey=([^;]+);/.exec(storage.cosmosConnectionString)!;
    const cosmos = new CosmosClient({
      endpoint: m[1]!,
      key: m[2]!,
      connectionPolicy: { enableEndpointDiscovery: false },
    });
    const { database } = await cosmos.databases.createIfNotExists({ id: "probe" });
    const { container } = await database.containers.createIfNotExists({ id: "c", partitionKey: { paths: ["/tenantId"] } });
    await container.items.create({ id: "1", tenantId: "t" });
    const { resource } = await container.item("1", "t").read();
    expect(resource?.id).toBe("1");
  });
});
