/**
 * Queue workers act on stored state, never on what a message says, and back-pressure rests on stored records, not on
 * how many messages a queue holds. Queue triggers are off in this file: each test sends, holds (a "stuck worker"
 * receives a message and keeps it invisible) and works messages itself, so nothing runs that it did not start.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import { QUEUES } from "../../../shared/config/resources";
import { notificationMessage, purgeBatchMessage } from "../../../shared/usecases/messages";
import { sendFirstDownloadNotice } from "../../../shared/usecases/notifications";
import { BATCH_CLAIM_MS, purgeBatch, runRetentionSweep } from "../../../shared/usecases/retention";
import { deleteUpload } from "../../../shared/usecases/upload-deletion";
import { startTestApp, type TestApp } from "../../helpers/app";
import { recordedBatch } from "../../helpers/sweep";
import { createUpload, download, uploadWith } from "../../helpers/uploads";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ queues: false, settings: { SUSPENDED_TENANT_NOTICE_DAYS: "30" } });
});
afterAll(async () => {
  await t?.stop();
});

const DAY = 86_400_000;
const queue = (name: string) => t.raw.queues.getQueueClient(name);
const encode = (msg: unknown) => Buffer.from(JSON.stringify(msg), "utf8").toString("base64");
const decode = (text: string): unknown => JSON.parse(Buffer.from(text, "base64").toString("utf8"));

/** Sends a message the way anyone with access to the queue could (not through the app's checked sender). */
async function sendRaw(name: string, msg: unknown, visibilityTimeout?: number): Promise<void> {
  await queue(name).sendMessage(encode(msg), { visibilityTimeout });
}

/** A stuck worker: takes the next message and keeps it invisible for an hour, without working it. */
async function holdNext(name: string): Promise<unknown> {
  const { receivedMessageItems } = await queue(name).receiveMessages({ numberOfMessages: 1, visibilityTimeout: 3600 });
  expect(receivedMessageItems).toHaveLength(1);
  return decode(receivedMessageItems[0]!.messageText);
}

/** Works every visible message of a queue as its trigger would (schema check, handler, delete). Returns how many. */
async function work(name: string): Promise<number> {
  let n = 0;
  for (;;) {
    const { receivedMessageItems } = await queue(name).receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 });
    if (receivedMessageItems.length === 0) return n;
    for (const m of receivedMessageItems) {
      const raw = decode(m.messageText);
      if (name === QUEUES.purge.name) await purgeBatch(t.services, purgeBatchMessage.parse(raw));
      else await sendFirstDownloadNotice(t.services, notificationMessage.parse(raw));
      await queue(name).deleteMessage(m.messageId, m.popReceipt);
      n++;
    }
  }
}

type Entry = { action: string; target: { id: string } | null; details: Record<string, unknown> };
async function auditOf(tenantId: string): Promise<Entry[]> {
  const { resources } = await t.raw.containers.audit.items
    .query<Entry>({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.type = 'audit-entry' ORDER BY c.seq", parameters: [{ name: "@t", value: tenantId }] })
    .fetchAll();
  return resources;
}

async function outboxHas(uploadId: string): Promise<boolean> {
  for await (const b of t.raw.blobs.getContainerClient("email-outbox").listBlobsFlat()) if (b.name.endsWith(`first-download-${uploadId}.json`)) return true;
  return false;
}

describe("back-pressure rests on the stored batches", () => {
  it("counts the items batches still hold against the budget, and never queues a held item again", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const start = t.clock.now().getTime();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await createUpload(t, apiKey, { size: 1, expiresInDays: 1 })).id);
    t.clock.set(start + DAY);
    expect(await runRetentionSweep(t.services, { maxItems: 3, batchSize: 2 })).toMatchObject({ due: 3, batches: 2, inFlight: 0 });
    // Nothing worked yet: the three are in flight, so nothing more is queued and none is queued twice.
    expect(await runRetentionSweep(t.services, { maxItems: 3, batchSize: 2 })).toMatchObject({ due: 0, inFlight: 3 });
    expect(await work(QUEUES.purge.name)).toBe(2);
    expect(await runRetentionSweep(t.services, { maxItems: 3, batchSize: 2 })).toMatchObject({ due: 2, inFlight: 0 });
    await work(QUEUES.purge.name);
    for (const id of ids) expect((await t.services.uploads.get(tenantId, id))!.status).toBe("expired");
    expect((await auditOf(tenantId)).filter((e) => e.action === "upload.purged")).toHaveLength(5);
    t.clock.set(start);
  });

  it("a message held invisible by a stuck worker holds back only its own items, and only until its claim runs out", async () => {
    const a = await t.createTenant();
    const b = await t.createTenant();
    const start = t.clock.now().getTime();
    const HOUR = 3_600_000;
    const x = await uploadWith(t, a.apiKey, 10, { expiresInDays: 1 });
    t.clock.set(start + HOUR);
    const y = await uploadWith(t, b.apiKey, 10, { expiresInDays: 1 });

    t.clock.set(start + DAY);
    const first = await runRetentionSweep(t.services);
    expect(first.due).toBe(1);
    const stuck = await holdNext(QUEUES.purge.name);
    // A message nobody recorded, invisible for an hour, as well: neither may stop the sweep.
    await sendRaw(QUEUES.purge.name, { sweepId: "not-a-sweep", batch: 0, class: "safedata" }, 3600);

    t.clock.set(start + DAY + HOUR);
    const second = await runRetentionSweep(t.services);
    expect(second, "the sweep queued nothing while a message was invisible").toMatchObject({ due: 1, inFlight: 1 });
    await work(QUEUES.purge.name);
    expect((await t.services.uploads.get(b.tenantId, y.id))!.status).toBe("expired");
    expect((await t.services.uploads.get(a.tenantId, x.id))!.status, "held by the stuck batch").toBe("available");

    // Once the stuck batch's claim is over, its item is queued again and purged once; the first sweep gets its
    // receipt for what it did (nothing), and the stuck message, when it finally arrives, does nothing.
    t.clock.set(start + DAY + 20 * 60_000);
    expect(await runRetentionSweep(t.services), "queued again while its claim runs").toMatchObject({ due: 0, inFlight: 1 });
    t.clock.set(start + DAY + BATCH_CLAIM_MS);
    expect(await runRetentionSweep(t.services)).toMatchObject({ due: 1, inFlight: 0 });
    await work(QUEUES.purge.name);
    expect((await t.services.uploads.get(a.tenantId, x.id))!.status).toBe("expired");
    t.clock.set(start + DAY + BATCH_CLAIM_MS + 15 * 60_000);
    await runRetentionSweep(t.services);
    expect(await purgeBatch(t.services, purgeBatchMessage.parse(stuck))).toMatchObject({ purged: 0, ignored: "unknown-batch" });
    const entries = await auditOf(a.tenantId);
    expect(entries.filter((e) => e.action === "upload.purged" && e.target?.id === x.id)).toHaveLength(1);
    const receipts = entries.filter((e) => e.action === "retention.receipt");
    expect(receipts.flatMap((e) => e.details.ids as string[])).toEqual([x.id]);
    const open = await t.raw.containers.operations.items.query({ query: "SELECT VALUE COUNT(1) FROM c WHERE c.type = 'sweep' AND IS_NULL(c.receiptsAt)" }).fetchAll();
    expect(open.resources[0], "every sweep closed").toBe(0);
    t.clock.set(start);
  });
});

describe("a purge-batches message names work; the stored state decides", () => {
  it("a message naming a live upload shreds nothing (the issue's example)", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const { id, content } = await uploadWith(t, apiKey, 100);
    // As a message of earlier versions looked (items in the message), sent by anyone with access to the queue.
    await sendRaw(QUEUES.purge.name, { sweepId: "forged", batch: 0, class: "safedata", items: [{ tenantId, id }] });
    await work(QUEUES.purge.name);
    const doc = await t.services.uploads.get(tenantId, id);
    expect(doc, "the upload was crypto-shredded").toMatchObject({ status: "available" });
    expect(doc!.dataKey).not.toBeNull();
    expect((await download(t, apiKey, id)).body.equals(content)).toBe(true);
    expect((await auditOf(tenantId)).map((e) => e.action)).not.toContain("upload.purged");
  });

  it("a batch the sweep did record is re-checked item by item: an upload that is not due is left alone", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const { id } = await uploadWith(t, apiKey, 10);
    const msg = await recordedBatch(t, `recorded-${randomUUID()}`, "safedata", [{ tenantId, id }]);
    expect(await purgeBatch(t.services, msg)).toMatchObject({ purged: 0, skipped: 1 });
    expect((await t.services.uploads.get(tenantId, id))!.dataKey).not.toBeNull();
  });

  it("a message naming a tenant suspended a second ago does not offboard it before its notice period", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const { id, content } = await uploadWith(t, apiKey, 10);
    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/suspend`)).status).toBe(200);
    const start = t.clock.now().getTime();
    t.clock.set(start + 1000);
    await sendRaw(QUEUES.purge.name, { sweepId: "forged", batch: 0, class: "suspended-tenant", items: [{ tenantId, id: tenantId }] });
    await work(QUEUES.purge.name);
    expect(await purgeBatch(t.services, await recordedBatch(t, `recorded-${randomUUID()}`, "suspended-tenant", [{ tenantId, id: tenantId }]))).toMatchObject({
      purged: 0,
      skipped: 1,
    });
    const tenant = await t.services.tenants.get(tenantId);
    expect(tenant!.offboardedAt, "offboarded during its notice period").toBeNull();
    expect(tenant!.contactEmail).not.toBeNull();
    await expect(t.services.keys.currentKek(tenantId)).resolves.toMatchObject({ version: "1" });
    expect((await t.services.uploads.get(tenantId, id))!.status).toBe("available");
    // It can still come back, with everything it had.
    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/reactivate`)).status).toBe(200);
    expect((await download(t, apiKey, id)).body.equals(content)).toBe(true);
    t.clock.set(start);
  });

  it("an idempotency record named before its 24 hours is kept, so a retried POST still replays", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const body = { senderReference: "x", recipients: ["a@b.example"], dataSubjects: ["c@d.example"], categories: ["contact"], fileName: "f", contentType: "text/plain", size: 1 };
    const headers = { "idempotency-key": "kept-1" };
    const first = await t.call("POST", "v1/uploads", { key: apiKey, json: body, headers });
    expect(first.status).toBe(201);
    const { resources } = await t.raw.containers.idempotency.items.query<{ id: string }>({ query: "SELECT c.id FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: tenantId }] }).fetchAll();
    expect(resources).toHaveLength(1);
    const msg = await recordedBatch(t, `recorded-${randomUUID()}`, "idempotency-record", [{ tenantId, id: resources[0]!.id }]);
    expect(await purgeBatch(t.services, msg)).toMatchObject({ purged: 0, skipped: 1 });
    const again = await t.call("POST", "v1/uploads", { key: apiKey, json: body, headers });
    expect(again.headers.get("idempotent-replayed")).toBe("true");
  });

  it("records the true reason: a sender's deletion that a sweep finishes is not 'expired', nor is an offboarding of an expired upload 'offboarded'", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const start = t.clock.now().getTime();
    const { id } = await uploadWith(t, apiKey, 10, { expiresInDays: 1 });
    // The sender's DELETE died right after it destroyed the key.
    const died = { after: (step: string) => { if (step === "shred") throw new Error("killed"); } };
    await expect(deleteUpload(t.services, tenantId, id, "sender-request", { actor: "key:test", requestId: randomUUID() }, died)).rejects.toThrow(/killed/);

    // Past its expiry (and past the DELETE's lease), the sweep finishes it.
    t.clock.set(start + DAY + 10 * 60_000);
    await runRetentionSweep(t.services);
    await work(QUEUES.purge.name);
    const doc = await t.services.uploads.get(tenantId, id);
    expect(doc).toMatchObject({ status: "deleted", deletion: { reason: "sender-request" } });
    const entries = await auditOf(tenantId);
    expect(entries.filter((e) => e.target?.id === id).map((e) => [e.action, e.details.reason ?? null])).toEqual(
      expect.arrayContaining([["upload.deleted", "sender-request"]]),
    );
    expect(entries.map((e) => e.action)).not.toContain("upload.purged");
    const receipt = entries.find((e) => e.action === "retention.receipt");
    expect(receipt?.details).toMatchObject({ count: 1, ids: [id], expired: 0, offboarded: 0, onRequest: 1 });

    // A suspended tenant whose upload had reached its end before the notice period ended: that upload expired.
    const other = await t.createTenant();
    t.clock.set(start);
    const expiredFirst = await uploadWith(t, other.apiKey, 10, { expiresInDays: 1 });
    const stillLive = await uploadWith(t, other.apiKey, 10, { expiresInDays: 32 });
    expect((await t.admin("POST", `v1/admin/tenants/${other.tenantId}/suspend`)).status).toBe(200);
    t.clock.set(start + 30 * DAY + 1000);
    const msg = await recordedBatch(t, `recorded-${randomUUID()}`, "suspended-tenant", [{ tenantId: other.tenantId, id: other.tenantId }]);
    expect(await purgeBatch(t.services, msg)).toMatchObject({ purged: 1 });
    expect((await t.services.uploads.get(other.tenantId, expiredFirst.id))!.deletion?.reason).toBe("expired");
    expect((await t.services.uploads.get(other.tenantId, stillLive.id))!.deletion?.reason).toBe("tenant-offboarded");
    t.clock.set(start);
  });
});

describe("a notifications message names an upload; the stored upload decides", () => {
  it("a forged first-download notice for an upload nobody downloaded sends nothing", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const { id } = await uploadWith(t, apiKey, 10, { notifyOnFirstDownload: "sender@tenant.example" });
    await sendRaw(QUEUES.notifications.name, { kind: "first-download", tenantId, uploadId: id });
    await work(QUEUES.notifications.name);
    expect(await outboxHas(id), "a notice for a download that never happened").toBe(false);
    expect((await t.services.uploads.get(tenantId, id))!.senderNotifiedAt).toBeNull();
    expect((await auditOf(tenantId)).map((e) => e.action)).not.toContain("upload.first-download-notified");
    // The real first download's notice is then sent, once, however often its message comes.
    expect((await download(t, apiKey, id)).res.status).toBe(200);
    await sendRaw(QUEUES.notifications.name, { kind: "first-download", tenantId, uploadId: id });
    await work(QUEUES.notifications.name);
    expect(await outboxHas(id)).toBe(true);
    expect((await auditOf(tenantId)).filter((e) => e.action === "upload.first-download-notified")).toHaveLength(1);
  });

  it("a lost notice is queued again once while its message is stuck, and again when that claim runs out", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const { id } = await uploadWith(t, apiKey, 10, { notifyOnFirstDownload: "sender@tenant.example" });
    const { _etag, ...doc } = (await t.services.uploads.get(tenantId, id))!;
    await t.services.uploads.replaceIfUnchanged({ ...doc, downloads: 1, firstDownloadAt: t.clock.now().toISOString() }, _etag);
    const start = t.clock.now().getTime();
    const requeued = async () => {
      await runRetentionSweep(t.services);
      return (await t.services.heartbeats.get("retention"))!.counts.noticesRequeued;
    };
    t.clock.set(start + 11 * 60_000);
    expect(await requeued()).toBe(1);
    await holdNext(QUEUES.notifications.name);
    t.clock.set(start + 26 * 60_000);
    expect(await requeued(), "queued again while the first message is merely stuck").toBe(0);
    t.clock.set(start + 72 * 60_000);
    expect(await requeued()).toBe(1);
    await work(QUEUES.notifications.name);
    expect(await outboxHas(id)).toBe(true);
    t.clock.set(start);
  });
});
