/** Blob and queue clients from settings: a connection string locally, managed identity in Azure. */
import { BlobServiceClient } from "@azure/storage-blob";
import { QueueServiceClient, type QueueClient } from "@azure/storage-queue";
import type { z } from "zod";
import type { StorageConnection } from "../config/settings";
import { azureCredential } from "../identity";

function credential(cfg: StorageConnection) {
  return azureCredential(cfg.clientId);
}

export function createBlobServiceClient(cfg: StorageConnection): BlobServiceClient {
  if (cfg.kind === "connectionString") return BlobServiceClient.fromConnectionString(cfg.connectionString!);
  return new BlobServiceClient(cfg.blobServiceUri!, credential(cfg));
}

export function createQueueServiceClient(cfg: StorageConnection): QueueServiceClient {
  if (cfg.kind === "connectionString") return QueueServiceClient.fromConnectionString(cfg.connectionString!);
  return new QueueServiceClient(cfg.queueServiceUri!, credential(cfg));
}

/**
 * Queue messages are JSON, validated with the consumer's schema before sending, and base64-encoded because the
 * Functions queue trigger expects base64 (plain text would go to the poison queue).
 */
export class QueueSender {
  constructor(private readonly service: QueueServiceClient) {}

  private queue(name: string): QueueClient {
    return this.service.getQueueClient(name);
  }

  /** Validates `message` with its consumer's schema and queues it, visible after `visibilityTimeoutSeconds`. */
  async send<T>(queueName: string, schema: z.ZodType<T>, message: T, options: { visibilityTimeoutSeconds?: number } = {}): Promise<void> {
    const checked = schema.parse(message);
    const text = Buffer.from(JSON.stringify(checked), "utf8").toString("base64");
    await this.queue(queueName).sendMessage(text, { visibilityTimeout: options.visibilityTimeoutSeconds });
  }

  /**
   * Puts `text` on `<queueName>-poison` (shared/config/resources.ts QUEUES: each queue has that twin), base64-encoded
   * as the Functions host writes its own poison copies, so the host, the local runtime (dev/runtime/queues.ts) and
   * tooling read it the same way. For a message that can never succeed, which the caller then completes so the host
   * deletes it from its queue. Answers the copy's message id. Does not create the queue (it is provisioned with its
   * twin): a missing or unreachable poison queue throws, and the caller must then not complete the message.
   */
  async sendToPoison(queueName: string, text: string): Promise<{ poisonQueue: string; messageId: string }> {
    const poisonQueue = `${queueName}-poison`;
    const r = await this.queue(poisonQueue).sendMessage(Buffer.from(text, "utf8").toString("base64"));
    return { poisonQueue, messageId: r.messageId };
  }

  /** The queue service's approximate count of messages in the queue, visible or not. */
  async approximateCount(queueName: string): Promise<number> {
    return (await this.queue(queueName).getProperties()).approximateMessagesCount ?? 0;
  }

  /** Reachability, for health: reads a queue's properties. */
  async probe(queueName: string): Promise<void> {
    await this.queue(queueName).getProperties();
  }
}
