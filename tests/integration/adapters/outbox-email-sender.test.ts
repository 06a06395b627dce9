import { BlobServiceClient, type ContainerClient } from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { LOCAL_ONLY_BLOB_CONTAINERS } from "../../../shared/config/resources";
import type { EmailMessage } from "../../../shared/email/email-sender";
import { InvalidEmailMessageError } from "../../../shared/email/email-sender";
import { lineLog } from "../../../shared/observability";
import { OutboxEmailSender, type OutboxRecord } from "../../../shared/email/outbox-email-sender";
import { startEmbeddedStorage, type EmbeddedStorage } from "../../../dev/embedded-storage";

const SENDER = "DoNotReply@safedata.local";

let storage: EmbeddedStorage;
let container: ContainerClient;

const clock = {
  ms: Date.parse("2026-03-02T23:59:30Z"),
  now() {
    return new Date(this.ms);
  },
};

function message(messageId: string, extra: Partial<EmailMessage> = {}): EmailMessage {
  return {
    messageId,
    to: ["person@example.org"],
    subject: "Your access request",
    text: "Here is your data.",
    ...extra,
  };
}

async function read(name: string): Promise<OutboxRecord> {
  return JSON.parse((await container.getBlockBlobClient(name).downloadToBuffer()).toString("utf8")) as OutboxRecord;
}

async function names(): Promise<string[]> {
  const out: string[] = [];
  for await (const b of container.listBlobsFlat()) out.push(b.name);
  return out.sort();
}

beforeAll(async () => {
  storage = await startEmbeddedStorage();
  container = BlobServiceClient.fromConnectionString(storage.storageConnectionString).getContainerClient(
    LOCAL_ONLY_BLOB_CONTAINERS.outbox.name,
  );
  await container.createIfNotExists();
});
afterAll(async () => {
  await storage?.stop();
});

describe("OutboxEmailSender against Azurite", () => {
  const outbox = () => new OutboxEmailSender(container, SENDER, { clock });

  it("writes the message as <yyyy-mm-dd>/<messageId>.json and it reads back", async () => {
    const result = await outbox().send(message("dsr-1-answer", { to: ["a@example.org", "b@example.org"], html: "<p>Here is your data.</p>" }));
    expect(result.providerMessageId).toBe("2026-03-02/dsr-1-answer.json");
    const props = await container.getBlockBlobClient(result.providerMessageId).getProperties();
    expect(props.contentType).toMatch(/^application\/json/);
    expect(await read(result.providerMessageId)).toEqual({
      messageId: "dsr-1-answer",
      sender: SENDER,
      to: ["a@example.org", "b@example.org"],
      subject: "Your access request",
      text: "Here is your data.",
      html: "<p>Here is your data.</p>",
      sentAt: "2026-03-02T23:59:30.000Z",
    });
  });

  it("a failing listener never fails the send, and its failure goes to the structured log with ids only", async () => {
    const lines: string[] = [];
    const sender = outbox();
    sender.onStored(() => {
      throw new Error("disk full writing for a@example.org");
    }, lineLog((line) => lines.push(line)));
    const result = await sender.send(message("dsr-9-listener", { to: ["a@example.org"] }));
    expect(result.providerMessageId).toBe("2026-03-02/dsr-9-listener.json");
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ event: "outbox.listener-failed", messageId: "dsr-9-listener", errorName: "Error" }),
    ]);
    expect(lines.join("\n")).not.toContain("a@example.org");
  });

  it("a second send of the same messageId is a no-op with the same result, even on the next day", async () => {
    const first = await outbox().send(message("dsr-2-answer"));
    const again = await outbox().send(message("dsr-2-answer", { subject: "Changed" }));
    clock.ms += 60_000; // past midnight
    const nextDay = await outbox().send(message("dsr-2-answer"));
    expect(again).toEqual(first);
    expect(nextDay).toEqual(first);
    expect((await read(first.providerMessageId)).subject).toBe("Your access request");
    expect((await names()).filter((n) => n.endsWith("/dsr-2-answer.json"))).toEqual(["2026-03-02/dsr-2-answer.json"]);
  });

  it("concurrent sends of one messageId write one message", async () => {
    const results = await Promise.all([1, 2, 3, 4].map(() => outbox().send(message("dsr-3-answer"))));
    expect(new Set(results.map((r) => r.providerMessageId)).size).toBe(1);
    expect((await names()).filter((n) => n.endsWith("/dsr-3-answer.json"))).toHaveLength(1);
  });

  it("completes a send that stopped after claiming its name", async () => {
    // As if an earlier attempt crashed between the two writes.
    const pointer = "2026-03-01/dsr-4-answer.json";
    await container.getBlockBlobClient("by-message-id/dsr-4-answer").upload(pointer, pointer.length);
    const result = await outbox().send(message("dsr-4-answer"));
    expect(result.providerMessageId).toBe(pointer);
    expect((await read(pointer)).messageId).toBe("dsr-4-answer");
  });

  it("refuses messageIds that are not safe blob names", async () => {
    for (const id of ["../x", "a/b", "", ".hidden", "x".repeat(129)]) {
      await expect(outbox().send(message(id))).rejects.toBeInstanceOf(InvalidEmailMessageError);
    }
    expect(() => new OutboxEmailSender(container, "not-an-address")).toThrow(RangeError);
  });
});
